"""doctagger plugins."""
from __future__ import annotations

import click

from doctagger.cli.common import echo_json, json_option


@click.command(name="plugins")
@click.option("--all", "show_all", is_flag=True,
              help="Include the core's essential plugins (the built-in extractors).")
@click.option("--check", is_flag=True,
              help="Exit with code 1 (after the usual output) when a plugin failed to load "
                   "or register, has an unknown hook, or a DOCTAGGER_LOAD_PLUGINS name "
                   "matches no installed plugin: a smoke test for CI.")
@json_option
def plugins_command(show_all, check, json_):
    """List installed plugins, the hooks they implement and the task types they provide.

    Plugins load from the 'doctagger' entry-point group; DOCTAGGER_LOAD_PLUGINS
    (comma-separated names, empty for none) limits which. Every hook is run, so a plugin
    that failed to import, to register or in any hook is listed with its stage and error;
    unknown (misspelled) hooks and allow-list names that match no plugin are warned about.

    Exit codes: 0, even when a plugin failed (the listing is the report); with --check,
    1 when any plugin has an error or a warning.

    \b
    Examples:
      doctagger plugins
      DOCTAGGER_LOAD_PLUGINS=classification doctagger plugins --json
      DOCTAGGER_LOAD_PLUGINS=keywords doctagger plugins --check   # in CI
    """
    from doctagger.plugin_report import plugin_info, unknown_hooks

    root = click.get_current_context().find_root().command
    ensure = getattr(root, "_ensure_plugin_commands", None)
    if ensure is not None:  # register_commands on the real group, as a plugin command would
        ensure()
    every = plugin_info()
    rows = [r for r in every if show_all or not r["essential"]]
    if json_:
        echo_json(rows)
    else:
        _print(rows, unknown_hooks())
    problems = [r["name"] for r in every if r["error"] or r["warnings"]]
    if check and problems:
        click.echo(f"Error: --check: problems with {', '.join(problems)}", err=True)
        click.get_current_context().exit(1)


def _print(rows: list[dict], unknown_hooks: dict[str, list[str]]) -> None:
    if not any(r["loaded"] for r in rows):
        click.echo("No plugins loaded.", err=True)
    for r in rows:
        if not r["loaded"] and not r["error"]:  # an allow-list name that matches nothing
            for warning in r["warnings"]:
                click.echo(f"Warning: {warning}", err=True)
            continue
        version = f" {r['version']}" if r["version"] else ""
        dist = f" ({r['distribution']}{version})" if r["distribution"] else ""
        click.echo(f"{r['name']}{dist}")
        if r["error"]:
            click.echo(f"  FAILED: {r['error']}")
        if not r["loaded"]:
            continue
        if r["task_types"]:
            click.echo(f"  task types: {', '.join(r['task_types'])}")
        if r["extractors"]:
            click.echo(f"  extractors: {', '.join(r['extractors'])}")
        unknown = unknown_hooks.get(r["name"], [])
        hooks = [f"{h} (unknown)" if h in unknown else h for h in r["hooks"]]
        click.echo(f"  hooks: {', '.join(hooks)}")
        for warning in r["warnings"]:
            click.echo(f"  warning: {warning}")


COMMANDS = [plugins_command]
