"""Render the CLI reference (docs/cli.md) from the commands' --help."""
from __future__ import annotations

import os

import click
from click.testing import CliRunner

WIDTH = 88


def _walk(command: click.Command, path: list[str]):
    yield path, command
    if isinstance(command, click.Group):
        ctx = click.Context(command, info_name=path[-1])
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not getattr(sub, "hidden", False):
                yield from _walk(sub, path + [name])


def render() -> str:
    """Markdown with one section per command, each holding its --help output."""
    from doctagger import plugins
    from doctagger.cli import cli

    saved = os.environ.get("DOCTAGGER_LOAD_PLUGINS")
    os.environ["DOCTAGGER_LOAD_PLUGINS"] = "classification,ner"
    plugins.reset()
    try:
        runner = CliRunner()
        out = []
        for path, _command in _walk(cli, ["doctagger"]):
            result = runner.invoke(cli, path[1:] + ["--help"], prog_name="doctagger",
                                   terminal_width=WIDTH)
            out.append(f"## {' '.join(path)}\n\n```\n{result.output.rstrip()}\n```\n")
    finally:
        if saved is None:
            os.environ.pop("DOCTAGGER_LOAD_PLUGINS", None)
        else:
            os.environ["DOCTAGGER_LOAD_PLUGINS"] = saved
        plugins.reset()
    return "\n" + "\n".join(out)
