"""Helpers shared by the command modules: the index, JSON output, tables."""
from __future__ import annotations

import json
import sys

import click


def get_index(ctx: click.Context | None = None):
    """The Index named by --index / DOCTAGGER_INDEX (created when missing)."""
    from doctagger.index import Index

    ctx = ctx or click.get_current_context()
    root = ctx.find_root()
    obj = root.obj if isinstance(root.obj, dict) else {}
    if "index" not in obj:
        obj["index"] = Index(obj.get("index_path"))
        root.obj = obj
        root.call_on_close(obj["index"].close)
    return obj["index"]


def json_option(fn):
    """--json, mapped to a json_ parameter."""
    return click.option("--json", "json_", is_flag=True, help="Output JSON.")(fn)


def echo_json(data) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def echo_table(rows: list[dict], columns: list[str], *, headers: dict | None = None,
               widths: dict | None = None) -> None:
    """Print rows as aligned columns; long cells are cut to `widths[col]`."""
    headers = headers or {}
    widths = widths or {}

    def cell(row, col):
        value = row.get(col)
        text = "" if value is None else str(value)
        text = " ".join(text.split())
        limit = widths.get(col)
        if limit and len(text) > limit:
            text = text[: limit - 1] + "…"
        return text

    table = [[headers.get(c, c) for c in columns]] + [[cell(r, c) for c in columns] for r in rows]
    sizes = [max(len(line[i]) for line in table) for i in range(len(columns))]
    for n, line in enumerate(table):
        click.echo("  ".join(v.ljust(sizes[i]) for i, v in enumerate(line)).rstrip())
        if n == 0:
            click.echo("  ".join("-" * s for s in sizes))


def is_tty() -> bool:
    return sys.stderr.isatty()
