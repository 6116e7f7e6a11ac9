"""Export a task's labels, or a model's predictions, as JSONL, CSV or CoNLL.

Labels come out in label-id order as records an import understands, so that export, then
import into a fresh index, then export again gives the same file:

- a chunk label -> a ``text`` record with the chunk's text (an orphaned label: the text it
  was given on). Records with the same text and the same value are written once;
- a document label -> a ``path`` record with the document's path; for a document that was
  imported as text (no file behind it) a ``text`` record with its text.

Predictions (``predictions=True``) come from the task's active model, or from ``model``
(a version number), with ``score`` and ``model_version`` (``scores`` per label for
multi-label tasks; ``document``, ``page`` for chunk predictions) as extra fields: chunk
predictions in document and chunk order; for a document-level task, one record per
document the model predicted (:func:`document_prediction_records`).

A record that a format cannot hold is refused with a message that names its document,
page and chunk (``LabelRecord.origin``), so the user can find it with ``doctagger show``.
"""
from __future__ import annotations

import json
from pathlib import Path

from doctagger.errors import InvalidInputError, NotFoundError
from doctagger.index import Index, text_hash
from doctagger.tasks import label_kind

FORMATS = ("jsonl", "csv", "tsv", "conll")


SUFFIXES = {"jsonl": "jsonl", "json": "jsonl", "ndjson": "jsonl", "csv": "csv", "tsv": "tsv",
            "conll": "conll", "conllu": "conll", "bio": "conll", "iob": "conll"}


def suffix_format(path) -> str | None:
    """The export format an output file's suffix names (``.jsonl``, ``.json``, ``.ndjson``,
    ``.csv``, ``.tsv``, ``.conll``, ``.conllu``, ``.bio``, ``.iob``); None for another
    suffix or none."""
    suffix = Path(str(path)).suffix.lower().lstrip(".")
    return SUFFIXES.get(suffix)


def format_for(path, fmt: str | None) -> str:
    """The export format: ``fmt`` when given, else from the output file's suffix, else
    (no file, or a file with no suffix) jsonl. A suffix that names no format
    (``out.xlsx``) is an InvalidInputError rather than JSONL in a file of another type."""
    if fmt:
        return fmt
    if path:
        found = suffix_format(path)
        if found:
            return found
        suffix = Path(str(path)).suffix
        if suffix:
            raise InvalidInputError(unknown_suffix_message(suffix))
    return "jsonl"


def unknown_suffix_message(suffix: str) -> str:
    return (f"cannot tell the format from {suffix!r}; use .jsonl, .csv, .tsv or .conll, or "
            "give --format")


def _where(path: str, page: int | None, page_end: int | None, chunk_id: int | None) -> str:
    """How an export message names a chunk label: ``/d/a.pdf, page 3, chunk 12`` (the chunk
    id that ``doctagger show`` prints)."""
    if chunk_id is None:
        return f"{path}, an orphaned chunk label (its chunk changed on re-ingest)"
    pages = "" if page is None else (
        f", page {page}" if page_end in (None, page) else f", pages {page}-{page_end}")
    return f"{path}{pages}, chunk {chunk_id}"


def _document_record(index: Index, row: dict) -> dict:
    """``{"path": ...}`` for a file, ``{"text": ...}`` for a document imported as text."""
    if row["source"] == "import":
        pages = [r["text"] for r in index.query(
            "select text from pages where document_id = ? order by page", [row["id"]])]
        if not pages:
            pages = [c["text"] for c in index.chunks(row["id"])]
        return {"text": "\n\n".join(pages)}
    return {"path": row["path"]}


def label_records(index: Index, task) -> list:
    """The task's labels as LabelRecords, in label-id order."""
    from doctagger.formats import LabelRecord

    rows = index.query(
        "select l.id, l.target, l.value, l.document_id, coalesce(c.text, l.text) as text, "
        "l.chunk_id, c.page, c.page_end, d.path "
        "from labels l left join chunks c on c.id = l.chunk_id "
        "join documents d on d.id = l.document_id "
        "where l.task_id = ? order by l.id", [task.id])
    records, seen = [], set()
    for r in rows:
        value = json.loads(r["value"])
        if r["target"] == "chunk":
            key = (text_hash(r["text"]), json.dumps(value, sort_keys=True))
            if key in seen:
                continue
            seen.add(key)
            records.append(LabelRecord(line=0, value=value, text=r["text"], origin=_where(
                r["path"], r["page"], r["page_end"], r["chunk_id"])))
            continue
        doc = index.one("select id, path, source from documents where id = ?",
                        [r["document_id"]])
        records.append(LabelRecord(line=0, value=value, origin=doc["path"],
                                   **_document_record(index, doc)))
    return records


def model_row(index: Index, task, version: int | None = None) -> dict:
    """A model of the task: ``version``, or the active one."""
    if version is not None:
        row = index.one("select * from models where task_id = ? and version = ?",
                        [task.id, int(version)])
        if row is None:
            known = ", ".join(f"v{r['version']}" for r in index.query(
                "select version from models where task_id = ? order by version", [task.id]))
            raise NotFoundError(f"task '{task.name}' has no model version {version} "
                                f"({'versions: ' + known if known else 'train one first'})")
        return row
    active = index.scalar("select active_model_id from tasks where id = ?", [task.id])
    if active is None:
        raise NotFoundError(f"task '{task.name}' has no active model; train one with "
                            f"'doctagger train {task.name}', or pass --model VERSION")
    return index.one("select * from models where id = ?", [active])


def prediction_records(index: Index, task, version: int | None = None) -> list:
    """A model's predictions for the task as LabelRecords (see the module docstring)."""
    from doctagger.formats import LabelRecord

    model = model_row(index, task, version)
    if task.level == "document":
        return document_prediction_records(index, task, model)
    records = []
    rows = index.query(
        "select p.value, p.score, p.scores, c.text, c.page, c.page_end, c.id as chunk_id, "
        "d.path from predictions p "
        "join chunks c on c.id = p.chunk_id join documents d on d.id = c.document_id "
        "where p.model_id = ? order by c.document_id, c.seq", [model["id"]])
    for r in rows:
        meta = {"score": r["score"]}
        if task.multi_label:  # the model's probability of every label, when it gave them
            meta["scores"] = json.loads(r["scores"]) if r["scores"] else None
        meta.update({"model_version": model["version"], "document": r["path"],
                     "page": r["page"]})
        records.append(LabelRecord(line=0, value=json.loads(r["value"]), text=r["text"],
                                   meta=meta, origin=_where(r["path"], r["page"],
                                                            r["page_end"], r["chunk_id"])))
    return records


def document_prediction_records(index: Index, task, model: dict) -> list:
    """One record per document the model predicted (or tagged), in document id order.

    A document with tags of the model: its tags (single-label: the label and its score;
    multi-label: the labels, ``scores`` per label and ``score``, the lowest). A document
    whose chunks the model predicted but which has no tag of it: rolled up again from those
    predictions. When it was left without a tag under ``--min-score`` (its predictions are
    queued for review), or the roll-up gives no label, its value is None (single-label) or
    [] (multi-label) and ``score`` is its best score, so no predicted document is left out.
    """
    from doctagger.formats import LabelRecord

    tags: dict[int, list[dict]] = {}
    for r in index.query(
            "select g.document_id, g.label, g.score from document_tags g "
            "where g.model_id = ? order by g.document_id, g.score desc, g.label",
            [model["id"]]):
        tags.setdefault(r["document_id"], []).append(r)
    queued = {r["document_id"]: bool(r["queued"]) for r in index.query(
        "select c.document_id, max(p.review) as queued from predictions p "
        "join chunks c on c.id = p.chunk_id where p.model_id = ? group by c.document_id",
        [model["id"]])}
    records = []
    for document_id in sorted(set(tags) | set(queued)):
        if document_id in tags:
            value, meta = _tagged_value(task, tags[document_id])
        else:
            value, meta = _rolled_up_value(index, task, model, document_id,
                                           queued[document_id])
        meta["model_version"] = model["version"]
        doc = index.one("select id, path, source from documents where id = ?", [document_id])
        records.append(LabelRecord(line=0, value=value, meta=meta, origin=doc["path"],
                                   **_document_record(index, doc)))
    return records


def _tagged_value(task, tags: list[dict]) -> tuple:
    """(value, meta) from a document's tags (best first)."""
    if task.multi_label:
        return (sorted(t["label"] for t in tags),
                {"score": min(t["score"] for t in tags),
                 "scores": {t["label"]: t["score"] for t in tags}})
    return tags[0]["label"], {"score": tags[0]["score"]}


def _rolled_up_value(index: Index, task, model: dict, document_id: int, queued: bool) -> tuple:
    """(value, meta) of a document without a tag of the model, from its chunk predictions."""
    from doctagger.plugins import get_task_type
    from doctagger.rollup import document_predictions, mean_chunk_scores, rollup

    items = document_predictions(index, model["id"], document_id, reviewed_out=False)
    rolled = rollup(task, get_task_type(task.type), items)
    scores = {t.label: round(float(t.score), 6) for t in rolled} or {
        label: round(p, 6) for label, p in mean_chunk_scores(items).items()}
    best = max(scores.values(), default=None)
    if queued or not rolled:  # no tag: under --min-score, or no label reached the roll-up
        return ([] if task.multi_label else None,
                {"score": best, "scores": scores} if task.multi_label else {"score": best})
    ordered = sorted(rolled, key=lambda t: (-float(t.score), t.label))
    return _tagged_value(task, [{"label": t.label, "score": round(float(t.score), 6)}
                                for t in ordered])


def missing_predictions(index: Index, task_name: str, version: int | None = None) -> str | None:
    """Why an export of predictions is empty, when it is because the model has not
    tagged yet: ``no predictions of vN yet: run 'doctagger tag TASK' first``; else None."""
    task = index.task(task_name)
    model = model_row(index, task, version)
    if index.scalar("select 1 from predictions where model_id = ? limit 1", [model["id"]]) \
            or index.scalar("select 1 from document_tags where model_id = ? limit 1",
                            [model["id"]]):
        return None
    command = f"doctagger tag {task.name}" + (f" --model {model['version']}"
                                              if version is not None else "")
    return f"no predictions of v{model['version']} yet: run '{command}' first"


def export_labels(index: Index, task_name: str, fh, *, fmt: str = "jsonl",
                  separator: str = "|", predictions: bool = False,
                  model: int | None = None) -> int:
    """Write the task's labels (or a model's predictions) to the text file ``fh``; returns
    how many records were written. ``fmt``: jsonl, csv, tsv or conll (NER tasks only)."""
    from doctagger.formats import write_labels

    if fmt not in FORMATS:
        raise InvalidInputError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    task = index.task(task_name)
    if model is not None and not predictions:
        raise InvalidInputError("--model picks whose predictions to export; add --predictions")
    kind = label_kind(task)
    records = (prediction_records(index, task, model) if predictions
               else label_records(index, task))
    return write_labels(records, fh, fmt, kind=kind, multi_label_separator=separator)


__all__ = ["FORMATS", "format_for", "suffix_format", "label_records", "prediction_records",
           "document_prediction_records", "missing_predictions", "model_row", "export_labels"]
