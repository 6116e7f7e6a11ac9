"""Docs that cannot drift: the CLI reference is generated, every command has help."""
from __future__ import annotations

import click
import pytest

from tests.conftest import REPO


def test_cli_reference_is_up_to_date(monkeypatch):
    cogapp = pytest.importorskip("cogapp")
    monkeypatch.chdir(REPO)
    status = cogapp.Cog().main(["cog", "--check", "docs/cli.md"])
    assert status == 0, "docs/cli.md is out of date: run 'make docs'"


def _commands():
    from doctagger.clidocs import _walk
    from doctagger.cli import cli

    return list(_walk(cli, ["doctagger"]))


def test_every_command_and_option_has_help(monkeypatch):
    monkeypatch.setenv("DOCTAGGER_LOAD_PLUGINS", "classification,ner")
    from doctagger import plugins

    plugins.reset()
    missing = []
    for path, command in _commands():
        name = " ".join(path)
        if not (command.help or "").strip():
            missing.append(f"{name}: no help text")
        for param in command.params:
            if isinstance(param, click.Option) and not param.help and param.name != "help":
                missing.append(f"{name} {param.opts[0]}: no help")
    assert not missing, "\n".join(missing)


def test_every_command_has_an_example(monkeypatch):
    monkeypatch.setenv("DOCTAGGER_LOAD_PLUGINS", "classification,ner")
    from doctagger import plugins

    plugins.reset()
    lacking = [" ".join(path) for path, command in _commands()
               if len(path) > 1 and not isinstance(command, click.Group)
               and "doctagger " not in (command.help or "")]
    assert not lacking, f"commands whose help has no example: {lacking}"
