"""``doctagger tag``: run a model version over the index (doctagger.tagging)."""
from __future__ import annotations

import contextlib

import click

from doctagger.cli.common import echo_json, get_index, is_tty, json_option


@click.command()
@click.argument("task")
@click.option("--model", "version", metavar="VERSION",
              help="Model version to tag with (default: the task's active version; "
                   "see 'doctagger models TASK').")
@click.option("--all", "all_", is_flag=True,
              help="Tag every chunk again, not only those without a prediction from this "
                   "model version.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True,
              help="Chunks per prediction batch (lower it if memory runs short).")
@click.option("--min-score", type=click.FloatRange(0, 1),
              help="Below this score no tag is written and the item is queued for "
                   "'doctagger label TASK --review'.")
@click.option("--write-pdf", "write_pdf", metavar="DIR", type=click.Path(file_okay=False),
              help="Also write copies of the tagged PDFs into DIR, with the tags in their "
                   "metadata (keywords, subject) and entities highlighted. The originals "
                   "are never modified.")
@json_option
def tag(task, version, all_, batch_size, min_score, write_pdf, json_):
    """Tag the index with a trained model: predictions for every chunk that has none from
    this model version yet, rolled up into document tags.

    A re-run tags only chunks added since; --all tags everything again. Tags are what
    'doctagger docs --tag', 'search --tag/--entity' and 'show' use.

    Classifiers and NER models run in bf16 where the CPU has it, checked against fp32 and
    re-run in fp32 where a label is close; DOCTAGGER_RUNTIME=torch forces fp32 (also:
    auto, bf16, int8). --json reports the runtime used.

    \b
    Examples:
      doctagger tag topic
      doctagger tag topic --min-score 0.7      # unsure ones go to 'label --review'
      doctagger tag people --model 2 --all --write-pdf tagged/
    """
    from doctagger.tagging import count_to_tag, require_model, tag_task

    index = get_index()
    progress = None
    bar_cm = contextlib.nullcontext()
    if is_tty() and not json_:
        from doctagger.plugins import get_task_type

        task_obj = index.task(task)
        model = require_model(index, task_obj, get_task_type(task_obj.type), version)
        total = count_to_tag(index, model["id"], all=all_)
        if total:
            bar_cm = click.progressbar(length=total, label=f"Tagging {task}",
                                       file=click.get_text_stream("stderr"))
    try:
        with bar_cm as bar:
            if bar is not None:
                progress = bar.update
            summary = tag_task(index, task, version=version, all=all_, batch_size=batch_size,
                               min_score=min_score, progress=progress)
    except KeyboardInterrupt:
        again = " ".join(["doctagger tag", task]
                         + ([f"--model {version}"] if version is not None else [])
                         + ([f"--min-score {min_score:g}"] if min_score is not None else []))
        if all_:  # --all again starts over; without it, what this run re-tagged counts
            how = (f"run '{again} --all' again to re-tag everything (it starts over), or "
                   f"'{again}' to tag only the chunks the model never predicted")
        else:
            how = (f"run '{again}' again to carry on from there (it also writes the document "
                   "tags this run did not get to)")
        click.echo(f"\nInterrupted: the predictions written so far are kept; {how}.", err=True)
        raise
    if write_pdf:
        from doctagger.pdf_writeback import write_pdfs

        summary["pdf"] = write_pdfs(index, index.task(task), write_pdf)
    if json_:
        echo_json(summary)
        return
    _report(summary, write_pdf)


def _report(s: dict, write_pdf) -> None:
    if not s["chunks"] and s["documents"]:
        click.echo(f"Every chunk already had a prediction from {s['task']} "
                   f"v{s['model_version']}; rebuilt the tags of {s['documents']} documents "
                   f"from them: {s['document_tags']} document tags.")
    elif not s["chunks"]:
        click.echo(f"Nothing to tag: every chunk has a prediction from {s['task']} "
                   f"v{s['model_version']} (use --all to tag them again).")
    else:
        repeated = (f" ({s['repeated_texts']} repeated a text already predicted)"
                    if s.get("repeated_texts") else "")
        click.echo(f"Tagged {s['chunks']} chunks of {s['documents']} documents with "
                   f"{s['task']} v{s['model_version']} in {s['seconds']} s{repeated}: "
                   f"{s['document_tags']} document tags.")
    what = "documents without a tag" if s["level"] == "document" else "predictions"
    labelled = s.get("review_labelled") or 0
    if s.get("min_score") is None:  # flags left by an earlier --min-score run
        if s["review"]:
            what = "documents" if s["level"] == "document" else "predictions"
            click.echo(f"{s['review']} {what} are still queued for review from an earlier "
                       f"--min-score run: doctagger label {s['task']} --review ('doctagger "
                       f"tag {s['task']} --all' re-decides them)")
    elif s["review"]:
        more = f" ({labelled} more are labelled already)" if labelled else ""
        click.echo(f"{s['review']} {what} under --min-score are queued for review"
                   f"{more}: doctagger label {s['task']} --review")
    elif labelled:
        click.echo(f"{labelled} {what} under --min-score are labelled already: nothing to "
                   "review.")
    if write_pdf:
        pdf = s["pdf"]
        copies = "copy" if len(pdf["written"]) == 1 else "copies"
        click.echo(f"Wrote {len(pdf['written'])} tagged PDF {copies} into {write_pdf}.")
        for line in skipped_lines(pdf["skipped"]):
            click.echo(line, err=True)


SKIPPED_SHOWN = 5  # documents listed per reason a copy was skipped


def skipped_lines(skipped: list[dict]) -> list[str]:
    """What --write-pdf skipped, a line per document, grouped by reason: texts imported
    without a file in one line, at most SKIPPED_SHOWN documents per other reason."""
    from doctagger.pdf_writeback import NO_FILE

    by_reason: dict[str, list[str]] = {}
    for item in skipped:
        by_reason.setdefault(item["reason"], []).append(item["path"])
    lines = []
    for reason, paths in by_reason.items():
        if reason == NO_FILE:
            lines.append(f"  {len(paths)} imported text{'s have' if len(paths) != 1 else ' has'}"
                         " no PDF file: skipped")
            continue
        lines.extend(f"  skipped {path}: {reason}" for path in paths[:SKIPPED_SHOWN])
        if len(paths) > SKIPPED_SHOWN:
            lines.append(f"  ... and {len(paths) - SKIPPED_SHOWN} more: {reason}")
    return lines


COMMANDS = [tag]
