"""The ``tasks`` group: create, list, show, add labels to and delete labelling schemes."""
from __future__ import annotations

import click
from click_default_group import DefaultGroup

from doctagger.cli.common import echo_json, echo_table, get_index, json_option


@click.group(cls=DefaultGroup, default="list", default_if_no_args=True)
def tasks():
    """Labelling schemes: what you label, with which labels. Defaults to 'list'.

    \b
    Examples:
      doctagger tasks create topic --type classification --labels legal,medical,financial
      doctagger tasks
      doctagger tasks show topic
    """


@tasks.command(name="create")
@click.argument("name")
@click.option("--type", "type_", required=True, metavar="TYPE",
              help="Task type, from a plugin: classification, ner, ... "
                   "('doctagger plugins' lists them).")
@click.option("--labels", "labels", required=True, multiple=True, metavar="A,B,C",
              help="The label names, separated by commas (may be repeated).")
@click.option("--multi-label", is_flag=True,
              help="An item may carry several labels at once (classification only).")
@click.option("--level", type=click.Choice(["chunk", "document"]), default="chunk",
              show_default=True, help="Label passages (chunks) or whole documents.")
@click.option("--description", help="What the task is for, in a sentence.")
@json_option
def create(name, type_, labels, multi_label, level, description, json_):
    """Create a task NAME of a task type with its labels.

    \b
    Examples:
      doctagger tasks create topic --type classification --labels legal,medical,financial
      doctagger tasks create topics --type classification --labels a,b,c --multi-label
      doctagger tasks create kind --type classification --labels memo,invoice --level document
      doctagger tasks create entities --type ner --labels PER,ORG,LOC
    """
    from doctagger.tasks import create_task, show_task

    index = get_index()
    task = create_task(index, name, type=type_, labels=labels, multi_label=multi_label,
                       level=level, description=description)
    if json_:
        echo_json(show_task(index, task.name))
        return
    multi = ", multi-label" if task.multi_label else ""
    click.echo(f"Created task '{task.name}' ({task.type}, {task.level}-level{multi}) with "
               f"labels: {', '.join(task.labels)}")


@tasks.command(name="list")
@json_option
def list_(json_):
    """List the tasks, with how many items are labelled and the active model.

    \b
    Examples:
      doctagger tasks list
      doctagger tasks --json
    """
    from doctagger.tasks import list_tasks

    rows = list_tasks(get_index())
    if json_:
        echo_json(rows)
        return
    if not rows:
        click.echo("No tasks; create one with 'doctagger tasks create NAME --type "
                   "classification --labels A,B'.", err=True)
        return
    for r in rows:
        r["labels"] = ",".join(r["labels"])
        r["multi"] = "yes" if r["multi_label"] else ""
        r["active"] = f"v{r['active_model']}" if r["active_model"] is not None else ""
    echo_table(rows, ["name", "type", "level", "multi", "labelled", "active", "labels"],
               headers={"multi": "multi-label", "active": "model"}, widths={"labels": 50})


@tasks.command(name="show")
@click.argument("name")
@json_option
def show(name, json_):
    """Show a task: its labels with how often each is used, models and predictions.

    \b
    Examples:
      doctagger tasks show topic
      doctagger tasks show topic --json
    """
    from doctagger.tasks import show_task

    info = show_task(get_index(), name)
    if json_:
        echo_json(info)
        return
    multi = "yes" if info["multi_label"] else "no"
    lines = [("name", info["name"]), ("type", info["type"]), ("level", info["level"]),
             ("multi-label", multi)]
    if info["description"]:
        lines.append(("description", info["description"]))
    labelled = f"{info['labelled_chunks']} chunks, {info['labelled_documents']} documents"
    if info["orphaned_labels"]:
        labelled += f" ({info['orphaned_labels']} chunk labels orphaned by re-ingestion)"
    lines.append(("labelled", labelled))
    if info["sources"]:
        lines.append(("sources", ", ".join(f"{k} {v}" for k, v in info["sources"].items())))
    versions = ", ".join(f"v{v}" for v in info["model_versions"]) or "none"
    active = f"v{info['active_model']}" if info["active_model"] is not None else "none"
    lines += [("models", versions), ("active model", active),
              ("predictions", info["predictions"]), ("document tags", info["document_tags"]),
              ("created", info["created_at"])]
    for key, value in lines:
        click.echo(f"{key + ':':14} {value}")
    counts = info["label_counts"]
    click.echo("\nLabels:")
    width = max((len(k) for k in counts), default=0)
    for label, n in counts.items():
        note = "" if label in info["labels"] else "   (not a label of this task)"
        click.echo(f"  {label.ljust(width)}  {n}{note}")
    unused = [k for k in info["labels"] if not counts.get(k)]
    if unused and info["labelled"]:
        click.echo(f"\nNo examples yet for: {', '.join(unused)}. A model cannot learn a label "
                   "it has never seen; label some with 'doctagger label' or 'doctagger import'.")


@tasks.command(name="add-labels")
@click.argument("name")
@click.argument("labels", nargs=-1, required=True, metavar="LABEL[,LABEL...]...")
@json_option
def add_labels(name, labels, json_):
    """Add labels to task NAME (labels can be added, not removed or renamed).

    The labels and models already stored keep their meaning; a model trained before does
    not know the new labels: label some items with them, then train again.

    \b
    Examples:
      doctagger tasks add-labels topic legal
      doctagger tasks add-labels entities PRODUCT,EVENT
    """
    from doctagger.tasks import add_labels as add, show_task

    index = get_index()
    task, added = add(index, name, labels)
    if json_:
        echo_json(show_task(index, task.name))
        return
    click.echo(f"Added {', '.join(added)} to task '{task.name}': its labels are now "
               f"{', '.join(task.labels)}.")
    from doctagger.plugins import get_task_type

    if not getattr(get_task_type(task.type), "needs_training", True):
        click.echo(f"Task type '{task.type}' needs no training: make it answer the new "
                   f"label{'s' if len(added) > 1 else ''} as its documentation says (a "
                   "plugin's own commands are listed by 'doctagger --help').")
    elif index.task_row(task.name)["active_model_id"] is not None:
        click.echo(f"Its active model does not know the new label"
                   f"{'s' if len(added) > 1 else ''}: label some items with "
                   f"{'them' if len(added) > 1 else 'it'} ('doctagger label {task.name}' or "
                   f"'doctagger import'), then 'doctagger train {task.name}'.")


@tasks.command(name="delete")
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@json_option
def delete(name, yes, json_):
    """Delete a task with its labels, models, predictions and document tags.

    Documents and chunks stay in the index.

    \b
    Examples:
      doctagger tasks delete topic
      doctagger tasks delete topic --yes
    """
    from doctagger.tasks import delete_task, show_task

    index = get_index()
    info = show_task(index, name)
    if not yes:
        click.confirm(
            f"Delete task '{name}' with {info['labelled']} labels, "
            f"{len(info['model_versions'])} models, {info['predictions']} predictions and "
            f"{info['document_tags']} document tags?", abort=True, err=True)
    result = delete_task(index, name)
    if json_:
        echo_json(result)
        return
    d = result["deleted"]
    click.echo(f"Deleted task '{name}': {d['labels']} labels, {d['models']} models, "
               f"{d['predictions']} predictions, {d['document_tags']} document tags.")


COMMANDS = [tasks]
