"""``import`` and ``export``: labels in and out as CSV, JSONL or CoNLL."""
from __future__ import annotations

import io
import os
import sys
import tempfile
from pathlib import Path

import click

from doctagger.cli.common import echo_json, get_index, is_tty, json_option

SEPARATOR_HELP = ("Separator between the labels of one CSV cell for multi-label tasks, "
                  "e.g. cardio|neuro.")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _progress(records):
    with click.progressbar(records, label="Importing labels", file=sys.stderr) as bar:
        yield from bar


@click.command(name="import")
@click.argument("task")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["auto", "csv", "tsv", "jsonl", "conll"]),
              default="auto", show_default=True,
              help="File format; auto goes by the file name (.csv, .tsv, .jsonl, .conll) "
                   "and, for .txt, by its content.")
@click.option("--separator", default="|", show_default=True, help=SEPARATOR_HELP)
@click.option("--source", type=click.Choice(["import", "human", "model-accepted"]),
              default="import", show_default=True,
              help="Where the labels come from, recorded on each label.")
@click.option("--dry-run", is_flag=True,
              help="Read and check everything, match every record, then write nothing.")
@json_option
def import_cmd(task, file, fmt, separator, source, dry_run, json_):
    """Import labels for TASK from FILE (CSV, JSONL or CoNLL), all or nothing.

    CSV: a header row 'text,label' (the Hugging Face guides' layout), or 'path,label' for
    document-level tasks; NER: 'text,spans' with spans as JSON. JSONL: Prodigy or doccano
    style ('text' with 'label'/'accept', or 'spans'/'entities'). CoNLL: token and tag a line
    (BIO, IOB1 or IO, detected), for NER tasks.

    A text equal to a chunk's text (white space aside) labels that chunk; any other text
    becomes an imported document of its own. A bad line stops the import with its line
    number, and nothing from the file is kept. See docs/labels.md.

    \b
    Examples:
      doctagger import topic labels.csv
      doctagger import topics labels.csv --separator ';'
      doctagger import entities train.conll --dry-run
      doctagger import kind documents.csv      # path,label for a document-level task
    """
    from doctagger.importer import import_labels

    index = get_index()
    show_bar = is_tty() and not json_
    result = import_labels(index, task, file, fmt=fmt, separator=separator, source=source,
                           dry_run=dry_run, progress=_progress if show_bar else None)
    if json_:
        echo_json(result.as_dict())
        return
    for warning in result.warnings:
        click.echo(f"Warning: {warning}", err=True)
    verb = "Would import" if dry_run else "Imported"
    parts = [f"{result.new} new", f"{result.updated} updated"]
    if result.unchanged:
        parts.append(f"{result.unchanged} unchanged")
    line = (f"{verb} {_plural(result.labels, 'label')} into '{result.task}' "
            f"({', '.join(parts)}); {_plural(result.documents_created, 'new document')}")
    extra = []
    if result.skipped:
        extra.append(f"{result.skipped} skipped")
    if result.duplicates:
        extra.append(f"{result.duplicates} duplicate")
    if result.conflicts:
        extra.append(f"{result.conflicts} conflicting")
    if extra:
        line += f"; lines: {', '.join(extra)}"
    if result.scheme:
        line += f"; tags read as {result.scheme}"
    click.echo(line + ".")
    if dry_run:
        click.echo("Dry run: nothing was written.")


@click.command(name="export")
@click.argument("task")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "tsv", "conll"]),
              default=None,
              help="File format (conll: NER tasks only). Default: from -o's suffix, else jsonl.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file instead of standard output.")
@click.option("--predictions", is_flag=True,
              help="Export the model's predictions (with score and model_version) instead "
                   "of the labels.")
@click.option("--model", "model", type=int, metavar="VERSION",
              help="With --predictions: this model version instead of the active one.")
@click.option("--separator", default="|", show_default=True, help=SEPARATOR_HELP)
def export_cmd(task, fmt, output, predictions, model, separator):
    """Export TASK's labels, or with --predictions a model's predictions.

    Labels come out in the order they were made, as records 'doctagger import' reads back:
    export, import into another index, export again gives the same file.

    \b
    Examples:
      doctagger export topic > labels.jsonl
      doctagger export topic -o labels.csv
      doctagger export entities --format conll -o entities.conll
      doctagger export topic --predictions --model 2 -o predictions.jsonl
    """
    from doctagger.exporter import export_labels, format_for, missing_predictions, \
        suffix_format, unknown_suffix_message

    if model is not None and not predictions:
        raise click.UsageError("--model picks whose predictions to export; add --predictions")
    if output is not None and fmt is None and output.suffix and not suffix_format(output):
        raise click.BadParameter(unknown_suffix_message(output.suffix),
                                 param_hint="'-o' / '--output'")
    index = get_index()
    fmt = format_for(output, fmt)
    buffer = io.StringIO(newline="")
    count = export_labels(index, task, buffer, fmt=fmt, separator=separator,
                          predictions=predictions, model=model)
    data = buffer.getvalue()
    what = "prediction" if predictions else "label"
    why = missing_predictions(index, task, model) if predictions and count == 0 else None
    if output is None:
        click.echo(data, nl=False)
        if count == 0:
            click.echo(f"No {what}s to export for '{task}'" + (f": {why}." if why else "."),
                       err=True)
        return
    _write_atomically(output, data)
    click.echo(f"Wrote {_plural(count, what)} of '{task}' to {output} ({fmt})"
               + (f"; {why}." if why else "."), err=True)


def _write_atomically(path: Path, data: str) -> None:
    """Write the whole file or nothing: a temporary file beside it, then a rename."""
    from doctagger.errors import InvalidInputError

    folder = path.parent
    if not folder.is_dir():
        raise InvalidInputError(f"cannot write {path}: the folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


COMMANDS = [import_cmd, export_cmd]
