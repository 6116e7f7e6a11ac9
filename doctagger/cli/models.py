"""``models``: the model registry (list, show, use). A noun group that defaults to list."""
from __future__ import annotations

import click

from doctagger.cli.common import echo_json, echo_table, get_index, json_option


class DefaultListGroup(click.Group):
    """``models`` and ``models TASK`` mean ``models list [TASK]``."""

    def parse_args(self, ctx, args):
        if not args or (args[0] not in self.commands and args[0] not in ("--help", "-h")):
            args = ["list", *args]
        return super().parse_args(ctx, args)


def _short(name) -> str:
    text = str(name or "")
    return text.rstrip("/").rsplit("/", 1)[-1] if text.startswith(("/", ".", "~")) else text


def _row(record: dict) -> dict:
    from doctagger.registry import headline

    best = headline(record["metrics"])
    return {"task": record["task"], "version": f"v{record['version']}",
            "active": "*" if record["active"] else "", "method": record["method"] or "",
            "base_model": _short(record["base_model"]),
            "score": f"{best[0]} {best[1]:.3f}" if best else "-",
            "created": record["created_at"]}


@click.group(cls=DefaultListGroup)
def models():
    """Trained model versions: list them, show one, choose the active one.

    \b
    Examples:
      doctagger models
      doctagger models topic
      doctagger models show topic v2
      doctagger models use topic 2
    """


@models.command("list")
@click.argument("task", required=False)
@json_option
def list_cmd(task, json_):
    """List model versions (of TASK, or of every task); * marks the active one.

    \b
    Examples:
      doctagger models list
      doctagger models list topic --json
    """
    from doctagger.registry import list_versions

    records = list_versions(get_index(), task)
    if json_:
        echo_json(records)
        return
    if not records:
        click.echo("No models yet: train one with 'doctagger train TASK'.", err=True)
        return
    echo_table([_row(r) for r in records],
               ["task", "version", "active", "method", "base_model", "score", "created"],
               headers={"base_model": "base model"}, widths={"base_model": 30})


@models.command()
@click.argument("task")
@click.argument("version", required=False)
@json_option
def show(task, version, json_):
    """Show a model version of TASK (default: the active one): metrics, parameters, data,
    where its files are.

    \b
    Examples:
      doctagger models show topic
      doctagger models show topic v2 --json
    """
    from doctagger import registry

    index = get_index()
    record = registry.get_version(index, task, version)
    record["card"] = str(registry.model_dir(index, task, record["version"]) / registry.CARD_FILE)
    if json_:
        echo_json(record)
        return
    info = record["info"]
    click.echo(f"{record['task']} v{record['version']}"
               f"{'  (active)' if record['active'] else ''}")
    facts = {"created": record["created_at"], "method": record["method"],
             "base model": record["base_model"], "data": record["data_fingerprint"],
             "device": info.get("device"), "train seconds": info.get("train_seconds"),
             "path": record["path"], "card": record["card"]}
    for key, value in facts.items():
        if value is not None:
            click.echo(f"  {key + ':':<15} {value}")
    scalars = {k: v for k, v in record["metrics"].items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if scalars:
        click.echo("Held-out metrics:")
        for key, value in scalars.items():
            click.echo(f"  {key + ':':<16} {value:.4f}" if isinstance(value, float)
                       else f"  {key + ':':<16} {value}")
    if record["params"]:
        click.echo("Parameters:")
        for key, value in record["params"].items():
            click.echo(f"  {key + ':':<16} {value}")
    for warning in info.get("warnings") or []:
        click.echo(f"Warning at training: {warning}")


@models.command()
@click.argument("task")
@click.argument("version")
@json_option
def use(task, version, json_):
    """Make VERSION the active model of TASK (what 'tag' uses): roll back or forward.

    \b
    Examples:
      doctagger models use topic 2
      doctagger models use topic v3
    """
    from doctagger import registry
    from doctagger.errors import NotFoundError
    from doctagger.tagging import document_tag_versions

    index = get_index()
    try:
        before = registry.get_version(index, task)["version"]
    except NotFoundError:
        before = None
    record = registry.activate(index, task, version)
    if json_:
        echo_json(record)
        return
    was = f" (was v{before})" if before and before != record["version"] else ""
    click.echo(f"{record['task']}: v{record['version']} is now active{was}.")
    others = [v for v in document_tag_versions(index, index.task(task))
              if v != record["version"]]
    if others:
        whose = " and ".join(f"v{v}'s" for v in others)
        click.echo(f"Document tags are {whose} until you run 'doctagger tag {record['task']}' "
                   f"(it rebuilds them from v{record['version']}).")


COMMANDS = [models]
