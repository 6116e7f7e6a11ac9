"""The kit's pytest fixtures (``doctagger_index``, ``doctagger_cli``, ``doctagger_plugin``)
and :class:`CliInvoker`, which runs ``doctagger ...`` in process against one index."""
from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture
def doctagger_index(tmp_path, monkeypatch):
    """A fresh, empty :class:`doctagger.index.Index` in ``tmp_path / "index"``.

    ``DOCTAGGER_INDEX`` points at it for the length of the test, the Hugging Face Hub is
    switched off (``HF_HUB_OFFLINE=1``) and plugins are reloaded before and after, so a test
    that changes ``DOCTAGGER_LOAD_PLUGINS`` sees its own plugin set."""
    from doctagger import plugins
    from doctagger.index import Index

    path = tmp_path / "index"
    monkeypatch.setenv("DOCTAGGER_INDEX", str(path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    monkeypatch.delenv("DOCTAGGER_RAISE_ERRORS", raising=False)
    plugins.reset()
    index = Index(path)
    yield index
    index.close()
    plugins.reset()


class CliInvoker:
    """Runs ``doctagger ARGS...`` in process against one index, as a user would.

    ``cli("tasks", "list")`` returns a ``click.testing.Result`` (``exit_code``, ``output``
    with stderr mixed in, ``stdout``, ``stderr``); ``cli.json("plugins", "--json")`` checks
    the exit code is 0 and returns the parsed standard output."""

    def __init__(self, index_path: Path):
        from click.testing import CliRunner

        self.index_path = Path(index_path)
        self.runner = CliRunner()

    def __call__(self, *args, input: str | None = None, env: dict | None = None, **extra):
        """``extra`` goes to Click (e.g. ``terminal_width=78`` for help as a shell shows it)."""
        from doctagger.cli import cli

        env = {"DOCTAGGER_INDEX": str(self.index_path), **(env or {})}
        return self.runner.invoke(cli, [str(a) for a in args], input=input, env=env,
                                  catch_exceptions=True, prog_name="doctagger", **extra)

    def json(self, *args, input: str | None = None, env: dict | None = None):
        result = self(*args, input=input, env=env)
        assert result.exit_code == 0, (
            f"doctagger {' '.join(map(str, args))} exited {result.exit_code}:\n{result.output}")
        return json.loads(result.stdout)


@pytest.fixture
def doctagger_cli(doctagger_index):
    """A :class:`CliInvoker` bound to ``doctagger_index``. Commands that plugins add during
    the test are taken off the ``doctagger`` group afterwards, so they cannot leak into
    other tests of the same session."""
    from doctagger.cli import cli

    before = dict(cli.commands)
    yield CliInvoker(doctagger_index.path)
    cli.commands.clear()
    cli.commands.update(before)
    if "_plugin_state" in vars(cli):  # let the group ask the plugins for commands again
        del cli._plugin_state


@pytest.fixture
def doctagger_plugin():
    """``doctagger_plugin(module_or_object, name)`` registers an in-process plugin (an object
    with ``@hookimpl`` functions) for the length of one test."""
    from doctagger import plugins

    names: list[str] = []

    def register(plugin, name: str):
        plugins.register_plugin(plugin, name)
        names.append(name)
        return plugin

    yield register
    for name in names:
        plugins.unregister_plugin(name)
