"""The ``doctagger`` command line: one Click group, one module per command group.

Command modules are thin: they parse options, call library functions and print. Typed
library errors (doctagger.errors) become one-line Click errors here, in one place.

A command's module (doctagger/cli/NAME.py, exposing ``COMMANDS = [...]``) is imported when
the command runs, not when the CLI starts: ``BUILTIN_COMMANDS`` says which module holds
which command. Listing the commands (``--help``) imports them all.
"""
from __future__ import annotations

import importlib
import os
import sqlite3
import sys

import click

from doctagger import __version__
from doctagger.errors import DoctaggerError

RAISE_ENV = "DOCTAGGER_RAISE_ERRORS"

#: built-in command name -> the module of doctagger.cli whose COMMANDS holds it
BUILTIN_COMMANDS = {
    "ingest": "ingest",
    "docs": "documents", "show": "documents", "status": "documents", "search": "documents",
    "tasks": "tasks",
    "label": "label",
    "import": "labels_io", "export": "labels_io",
    "train": "train", "eval": "train",
    "models": "models",
    "tag": "tag",
    "plugins": "plugins_cmd",
}


class LazyCommands(dict):
    """A group's ``commands`` where the built-in commands are imported on first use: a
    lookup by name imports that command's module only; anything that lists the commands
    (iteration, keys, len) imports them all. Commands added with ``add_command`` (plugins')
    are stored as usual and win over a built-in of the same name."""

    def __init__(self, modules: dict[str, str], package: str = __name__):
        super().__init__()
        self.modules = modules
        self.package = package

    def _load(self, name) -> None:
        """Add the commands of ``name``'s module, unless ``name`` is here already."""
        if dict.__contains__(self, name) or name not in self.modules:
            return
        module_name = f"{self.package}.{self.modules[name]}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            return
        for command in module.COMMANDS:
            self.setdefault(command.name, command)

    def load_all(self) -> None:
        for name in self.modules:
            self._load(name)

    def loaded_names(self) -> set[str]:
        """The names present now, importing nothing."""
        return set(dict.keys(self))

    def __contains__(self, name) -> bool:
        return dict.__contains__(self, name) or name in self.modules

    def __getitem__(self, name):
        self._load(name)
        return super().__getitem__(name)

    def get(self, name, default=None):
        self._load(name)
        return super().get(name, default)

    def __iter__(self):
        self.load_all()
        return super().__iter__()

    def __len__(self) -> int:
        self.load_all()
        return super().__len__()

    def keys(self):
        self.load_all()
        return super().keys()

    def values(self):
        self.load_all()
        return super().values()

    def items(self):
        self.load_all()
        return super().items()

    def copy(self) -> dict:
        return dict(self.items())


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
            before = self._present_commands()
            self._plugin_state = current
            plugins.call_each("register_commands", cli=self)
            self._plugin_command_names = self._present_commands() - before

    def _present_commands(self) -> set[str]:
        if isinstance(self.commands, LazyCommands):
            return self.commands.loaded_names()
        return set(self.commands)

    def get_command(self, ctx, cmd_name):
        # a plugin's command is looked up again if the loaded plugins changed since it was
        # added (in one process: tests, or a library caller that reloads plugins)
        if cmd_name not in self.commands or cmd_name in getattr(
                self, "_plugin_command_names", ()):
            self._ensure_plugin_commands()
        return super().get_command(ctx, cmd_name)

    def resolve_command(self, ctx, args):
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:  # "No such command 'X'.": say if a plugin failed
            if exc.message.startswith("No such command"):
                from doctagger.plugin_report import missing_command_hint

                exc.message = " ".join(filter(None, [
                    exc.message, missing_command_hint(str(args[0]))]))
            raise

    def list_commands(self, ctx):
        if isinstance(self.commands, LazyCommands):
            self.commands.load_all()  # built-ins first: a plugin's command of the same name wins
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


def _check_index_option(ctx, param, value):
    """--index must name a folder (or one to create); say where a bad value came from."""
    if value is not None and os.path.isfile(value):
        source = ctx.get_parameter_source(param.name)
        where = (f"DOCTAGGER_INDEX={value}" if source == click.core.ParameterSource.ENVIRONMENT
                 else f"--index {value}")
        raise click.BadParameter(f"{where} is a file; the index is a folder (it holds "
                                 "doctagger.db): point it at a folder", param=param)
    return value


@click.group(cls=DoctaggerGroup)
@click.version_option(__version__, prog_name="doctagger")
@click.option("--index", "index_path", envvar="DOCTAGGER_INDEX", default=".doctagger",
              show_default=True, type=click.Path(), metavar="DIRECTORY",
              callback=_check_index_option,
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


cli.commands = LazyCommands(BUILTIN_COMMANDS)


def main(argv=None):
    return cli.main(args=argv, prog_name="doctagger")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
