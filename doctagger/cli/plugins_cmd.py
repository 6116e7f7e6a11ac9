"""doctagger plugins."""
from __future__ import annotations

import click

from doctagger.cli.common import echo_json, json_option


@click.command(name="plugins")
@click.option("--all", "show_all", is_flag=True,
              help="Include the core's essential plugins (the built-in extractors).")
@json_option
def plugins_command(show_all, json_):
    """List installed plugins, the hooks they implement and the task types they provide.

    Plugins load from the 'doctagger' entry-point group; DOCTAGGER_LOAD_PLUGINS
    (comma-separated names, empty for none) limits which. A plugin that failed to load
    is listed with its error.

    \b
    Examples:
      doctagger plugins
      DOCTAGGER_LOAD_PLUGINS=classification doctagger plugins --json
    """
    from doctagger import plugins

    rows = [r for r in plugins.plugin_info() if show_all or not r["essential"]]
    if json_:
        echo_json(rows)
        return
    if not rows:
        click.echo("No plugins loaded.", err=True)
        return
    for r in rows:
        version = f" {r['version']}" if r["version"] else ""
        dist = f" ({r['distribution']}{version})" if r["distribution"] else ""
        click.echo(f"{r['name']}{dist}")
        if r["error"]:
            click.echo(f"  FAILED: {r['error']}")
            continue
        if r["task_types"]:
            click.echo(f"  task types: {', '.join(r['task_types'])}")
        if r["extractors"]:
            click.echo(f"  extractors: {', '.join(r['extractors'])}")
        click.echo(f"  hooks: {', '.join(r['hooks'])}")


COMMANDS = [plugins_command]
