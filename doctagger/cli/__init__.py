"""The ``doctagger`` command line: one Click group, one module per command group.

Command modules are thin: they parse options, call library functions and print. Typed
library errors (doctagger.errors) become one-line Click errors here, in one place.
"""
from __future__ import annotations

import os
import sqlite3
import sys

import click

from doctagger import __version__
from doctagger.errors import DoctaggerError

RAISE_ENV = "DOCTAGGER_RAISE_ERRORS"


class DoctaggerGroup(click.Group):
    """The root group: maps library errors to Click errors, and lists commands in the
    order of the workflow rather than alphabetically."""

    _plugin_state = None

    def _ensure_plugin_commands(self):
        """Add plugins' commands once per loaded plugin set (register_commands hook)."""
        from doctagger import plugins

        current = plugins.state()
        if self._plugin_state is not current:
            for name in getattr(self, "_plugin_command_names", ()):
                self.commands.pop(name, None)
            before = set(self.commands)
            self._plugin_state = current
            plugins.call_each("register_commands", cli=self)
            self._plugin_command_names = set(self.commands) - before

    def get_command(self, ctx, cmd_name):
        if cmd_name not in self.commands:
            self._ensure_plugin_commands()
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx):
        self._ensure_plugin_commands()
        order = ["ingest", "docs", "show", "status", "search", "tasks", "label", "import",
                 "export", "train", "eval", "models", "tag", "plugins"]
        names = list(self.commands)
        return sorted(names, key=lambda n: (order.index(n) if n in order else len(order), n))

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except DoctaggerError as exc:
            if os.environ.get(RAISE_ENV):
                raise
            raise click.ClickException(str(exc)) from exc
        except sqlite3.OperationalError as exc:
            if os.environ.get(RAISE_ENV):
                raise
            if "locked" in str(exc) or "busy" in str(exc):
                raise click.ClickException(
                    "the index is locked by another doctagger process; wait for it to "
                    "finish and run this again") from exc
            raise click.ClickException(f"database error: {exc}") from exc
        except KeyboardInterrupt:
            raise click.Abort() from None
        except BrokenPipeError:
            # `doctagger docs | head`: the reader went away; stop quietly.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise click.exceptions.Exit(0) from None
        except Exception as exc:
            if os.environ.get(RAISE_ENV):
                raise
            raise click.ClickException(
                f"unexpected error: {type(exc).__name__}: {exc} "
                f"(run again with {RAISE_ENV}=1 to see the traceback, and report it)") from exc


@click.group(cls=DoctaggerGroup)
@click.version_option(__version__, prog_name="doctagger")
@click.option("--index", "index_path", envvar="DOCTAGGER_INDEX", default=".doctagger",
              show_default=True, type=click.Path(file_okay=False),
              help="Folder holding the index (doctagger.db) and trained models. "
                   "Env: DOCTAGGER_INDEX.")
@click.pass_context
def cli(ctx, index_path):
    """Tag folders of PDFs with your own categories and entities, using a model trained
    on your own labels, on your own machine.

    \b
    The loop:
      doctagger ingest ~/papers                 # extract and chunk the PDFs
      doctagger tasks create topic --type classification --labels a,b,c
      doctagger import topic labels.csv         # or: doctagger label topic
      doctagger train topic                     # a versioned model, with metrics
      doctagger tag topic                       # predictions into the index
      doctagger search "heart" --tag topic=b    # find what was tagged
    """
    ctx.ensure_object(dict)
    ctx.obj["index_path"] = index_path


def _add_commands():
    from doctagger.cli import documents, plugins_cmd

    for module in (documents, plugins_cmd):
        for command in module.COMMANDS:
            cli.add_command(command)
    import importlib

    for name in ("ingest", "tasks", "labels_io", "train", "models", "tag", "label"):
        try:
            module = importlib.import_module(f"doctagger.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"doctagger.cli.{name}":
                raise
            continue
        for command in module.COMMANDS:
            cli.add_command(command)


_add_commands()


def main(argv=None):
    return cli.main(args=argv, prog_name="doctagger")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
