"""``doctagger eval`` as a library: load a version, predict, score, write reports.

Without a file, a version is evaluated on the held-out examples it was trained with: their
text hashes are stored in its doctagger.json (``split.eval_text_hashes``), and the
examples of the task that still carry those texts are scored with their *current* labels
(a label fixed since training is scored as fixed). With ``--file`` any label file that
``doctagger import`` reads is scored instead.

Document-level classification tasks are scored as ``tag`` labels documents: the model
predicts each chunk and the task type's ``rollup`` makes the document's tags (for the
classification plugin, the mean of the chunk probabilities, as at training time).

Reports go beside the model, in ``models/TASK/vN/eval/``: ``NAME.json`` (everything),
``NAME.md`` (tables) and, for classification, ``NAME-confusion.png`` (drawn with PyMuPDF:
no plotting library needed). NAME is ``heldout`` or ``file-STEM``.
"""
from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

from doctagger import registry
from doctagger.document_predictions import reads_documents
from doctagger.errors import ImportFormatError, InvalidInputError, InvalidLabelError, \
    NotFoundError
from doctagger.index import Index, now, text_hash
from doctagger.tasktypes import Example, Task

BATCH = 64


def label_kind(task: Task, task_type) -> str:
    """The ``kind`` doctagger.formats expects for the task: class, classes or spans."""
    if getattr(task_type, "value_kind", "class") == "spans":
        return "spans"
    return "classes" if task.multi_label else "class"


def heldout_examples(index: Index, task: Task, meta: dict) -> list[Example]:
    """The task's current examples whose texts were held out when the version trained."""
    from doctagger.labels import examples

    hashes = set((meta.get("split") or {}).get("eval_text_hashes") or [])
    if not hashes:
        raise InvalidInputError(
            f"{task.name} v{meta.get('version')} was trained without a held-out set; "
            f"evaluate it on a labelled file: doctagger eval {task.name} --file FILE")
    chosen = [ex for ex in examples(index, task) if text_hash(ex.text or "") in hashes]
    if not chosen:
        raise NotFoundError(f"none of the examples held out for {task.name} "
                            f"v{meta.get('version')} are labelled any more; evaluate on a "
                            "file with --file")
    return chosen


def file_examples(index: Index, task: Task, task_type, path, fmt: str = "auto") -> list[Example]:
    """Gold examples from a label file (CSV, JSONL, CoNLL; what ``import`` reads). Values go
    through the task type's ``validate``; document records (``path,label``) take the text
    of that document in the index."""
    from doctagger.formats import read_labels

    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"no file {path}")
    records = read_labels(path, fmt, kind=label_kind(task, task_type))
    out = []
    for record in records:
        try:
            value = task_type.validate(task, record.value)
        except InvalidLabelError as exc:
            from doctagger.formats.base import problem_line

            line = problem_line(record, lambda v: task_type.validate(task, v))
            raise ImportFormatError(path, line, str(exc)) from exc
        if record.text is not None:
            out.append(Example(text=record.text, value=value))
            continue
        document = index.document(record.path)
        parts = [c["text"] for c in index.chunks(document["id"])]
        out.append(Example(text="\n".join(parts), value=value, group=document["id"],
                           document_id=document["id"], parts=parts))
    if not out:
        raise InvalidInputError(f"{path} holds no labelled records to evaluate on")
    return out


def seen_in_training(index: Index, task: Task, meta: dict, gold: list[Example]) -> int:
    """How many ``gold`` examples the version was trained on, as far as the index tells:
    texts (documents, for document-level tasks) labelled for the task before the version
    was made and not held out. A score on those measures memory, not generalisation."""
    split = meta.get("split") or {}
    if (meta.get("info") or {}).get("refit"):  # the held-out examples were learned too
        split = {}
    made = meta.get("created_at") or now()
    if task.level == "document":
        held = set(split.get("eval_ids") or []) if split.get("id_kind") == "document" else set()
        trained = {r["document_id"] for r in index.query(
            "select document_id from labels where task_id = ? and target = 'document' "
            "and created_at <= ?", [task.id, made])} - held
        return sum(1 for ex in gold if ex.document_id is not None and ex.document_id in trained)
    held = set(split.get("eval_text_hashes") or [])
    trained = {r["text_hash"] for r in index.query(
        "select text_hash from labels where task_id = ? and target = 'chunk' and "
        "text_hash is not null and created_at <= ?", [task.id, made])} - held
    return sum(1 for ex in gold if text_hash(ex.text or "") in trained)


def predict_all(predictor, texts: list[str], *, batch_size: int = BATCH) -> list:
    """``predictor.predict`` over batches, with a progress bar on a terminal."""
    import click

    out: list = []
    batches = [texts[i:i + batch_size] for i in range(0, len(texts), batch_size)]
    if sys.stderr.isatty() and len(batches) > 1:
        with click.progressbar(batches, label="Predicting", file=sys.stderr,
                               show_eta=True) as bar:
            for batch in bar:
                out.extend(predictor.predict(batch))
    else:
        for batch in batches:
            out.extend(predictor.predict(batch))
    if len(out) != len(texts):
        raise InvalidInputError(f"the predictor returned {len(out)} predictions for "
                                f"{len(texts)} texts; report it to the task type's plugin")
    return out


def rolls_up(task: Task, task_type) -> bool:
    """Document-level class tasks are scored the way ``tag`` labels documents."""
    return task.level == "document" and getattr(task_type, "value_kind", "class") != "spans"


def predict_examples(task: Task, task_type, predictor, examples: list[Example], *,
                     whole_documents: bool = False) -> list:
    """One Prediction per example. Chunk-level tasks (and NER): ``predict`` on the texts.
    Document-level classification: ``predict`` on each document's chunks, then the task
    type's ``rollup`` into document tags, as ``tag`` does; the top tag is the predicted
    label (every tag, for multi-label). So ``eval`` measures what ``tag`` writes.
    ``whole_documents``: the version predicts a document as one text
    (doctagger.document_predictions), as ``tag`` then does."""
    from doctagger.tasktypes import ChunkPrediction, Prediction

    if not rolls_up(task, task_type):
        return predict_all(predictor, [ex.text for ex in examples])
    parts = [[p for p in (ex.parts or [ex.text]) if p and p.strip()] or [ex.text or " "]
             for ex in examples]
    if whole_documents:
        import torch

        with torch.inference_mode():
            return list(predictor.predict_documents(parts))
    flat = predict_all(predictor, [p for doc in parts for p in doc])
    out, at = [], 0
    for doc in parts:
        items = [ChunkPrediction(chunk_id=i, page=None, text=text, prediction=flat[at + i])
                 for i, text in enumerate(doc)]
        at += len(doc)
        try:
            tags = sorted(task_type.rollup(task, items), key=lambda t: -t.score)
        except NotImplementedError:  # a task type without roll-up: the document as one text
            return predict_all(predictor, [ex.text for ex in examples])
        if task.multi_label:
            out.append(Prediction(value=sorted(t.label for t in tags),
                                  score=min((t.score for t in tags), default=0.0),
                                  scores={t.label: t.score for t in tags}))
        else:
            top = tags[0] if tags else None
            out.append(Prediction(value=top.label if top else None,
                                  score=top.score if top else 0.0,
                                  scores={t.label: t.score for t in tags}))
    return out


def evaluate_version(index: Index, task_name: str, version=None, *, file=None,
                     fmt: str = "auto", write: bool = True) -> dict:
    """Score a version (``version`` None: the active one) on its held-out examples (for a
    task type that needs no training: on all the task's labels, which it never learns
    from) or on ``file``; with ``write``, save JSON, Markdown and a confusion-matrix PNG
    beside the model. Returns {task, version, source, examples, metrics, seconds,
    reports}."""
    from doctagger.plugins import get_task_type

    task = index.task(task_name)
    task_type = get_task_type(task.type)
    if version is None and not getattr(task_type, "needs_training", True):
        from doctagger.tagging import resolve_model  # a rule-based type: its "rules" version

        resolve_model(index, task, task_type)
    record = registry.get_version(index, task, version)
    folder = registry.model_dir(index, task, record["version"])
    meta = registry.metadata_of(index, task, record["version"])
    if file is not None:
        gold = file_examples(index, task, task_type, file, fmt)
        source, name = str(file), "file-" + _slug(Path(file).stem)
    elif not getattr(task_type, "needs_training", True):
        # a rule-based type learns nothing from labels: every label measures it fairly
        from doctagger.labels import examples

        gold = examples(index, task)
        if not gold:
            raise NotFoundError(f"task '{task.name}' has no labels to measure it against: "
                                f"label some with 'doctagger label {task.name}', or give "
                                "--file")
        source, name = "all labels", "labels"
    else:
        refit = (meta.get("info") or {}).get("refit")
        if refit:
            return _measured_before_refit(task, record, meta, folder, write)
        gold = heldout_examples(index, task, meta)
        source, name = "held-out", "heldout"
    started = time.monotonic()
    predictor = task_type.load(task, folder)
    predictions = predict_examples(task, task_type, predictor, gold,
                                   whole_documents=reads_documents(task, record))
    metrics = task_type.evaluate(task, gold, predictions)
    result = {"task": task.name, "version": record["version"], "source": source,
              "examples": len(gold), "metrics": metrics,
              "seconds": round(time.monotonic() - started, 2), "created_at": now(),
              "reports": {}}
    if file is not None:
        result["seen_in_training"] = seen_in_training(index, task, meta, gold)
    if write:
        result["reports"] = write_reports(folder / "eval", name, result)
    return result


REFIT_SOURCE = ("held-out, as measured at training time before the version was fitted "
                "again on all labels (they are all training data now: measure it on new "
                "labels with --file)")


def _measured_before_refit(task: Task, record: dict, meta: dict, folder: Path,
                           write: bool) -> dict:
    """A version fitted again on its held-out examples after they measured it (the head
    method's refit) cannot be measured on them again: its held-out result is the one
    recorded at training time."""
    split = meta.get("split") or {}
    result = {"task": task.name, "version": record["version"], "source": REFIT_SOURCE,
              "examples": split.get("eval", 0), "metrics": meta.get("metrics") or {},
              "seconds": 0.0, "created_at": now(), "reports": {}, "recorded": True}
    if write:
        result["reports"] = write_reports(folder / "eval", "heldout", result)
    return result


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "file"


# -- reports ------------------------------------------------------------------------------
def write_reports(folder: Path, name: str, result: dict) -> dict:
    """NAME.json, NAME.md and (when there is a confusion matrix) NAME-confusion.png."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / f"{name}.json", "markdown": folder / f"{name}.md"}
    metrics = result["metrics"]
    matrix, labels = metrics.get("confusion_matrix"), metrics.get("labels")
    if matrix and labels:
        paths["png"] = folder / f"{name}-confusion.png"
        rows, columns, title = _matrix_grid(matrix, labels, metrics.get("multi_label"))
        confusion_png(rows, columns, title, paths["png"],
                      row_labels=labels, column_labels=columns)
    reports = {k: str(v) for k, v in paths.items()}
    payload = dict(result, reports=reports)
    paths["json"].write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=str)
                             + "\n", encoding="utf-8")
    paths["markdown"].write_text(markdown_report(payload), encoding="utf-8")
    return reports


def _matrix_grid(matrix, labels, multi_label):
    """(rows of numbers, column names, title) to draw."""
    if multi_label:  # one [[tn, fp], [fn, tp]] per label -> TP FP FN TN per label
        rows = [[m[1][1], m[0][1], m[1][0], m[0][0]] for m in matrix]
        return rows, ["TP", "FP", "FN", "TN"], "per label (multi-label)"
    return matrix, list(labels), "gold (rows) x predicted (columns)"


def confusion_png(rows: list[list[int]], columns: list[str], title: str, path, *,
                  row_labels: list[str], column_labels: list[str]) -> Path:
    """Draw a count matrix as a heat map PNG (each row shaded by its share of the row)."""
    from doctagger.extractors import import_pymupdf

    pymupdf = import_pymupdf()

    n_rows, n_cols = len(rows), len(columns)
    cell = max(18, min(40, 600 // max(n_rows, n_cols, 1)))
    font = max(6.0, min(9.0, cell / 3.5))

    def cut(text):
        text = str(text)
        return text if len(text) <= 24 else text[:22] + ".."

    left = 12 + font * 0.55 * max([len(cut(x)) for x in row_labels] + [4])
    top = 30 + font * 0.55 * max([len(cut(x)) for x in column_labels] + [4])
    width = max(left + n_cols * cell + 12, 12 + 9 * 0.5 * len(title))
    height = top + n_rows * cell + 12
    doc = pymupdf.open()
    page = doc.new_page(width=width, height=height)
    page.draw_rect(page.rect, color=None, fill=(1, 1, 1))
    page.insert_text((6, 14), title, fontsize=9)
    for j, name in enumerate(column_labels):
        x = left + j * cell + cell / 2 + font / 3
        page.insert_text((x, top - 4), cut(name), fontsize=font, rotate=90)
    for i, row in enumerate(rows):
        y = top + i * cell
        page.insert_text((6, y + cell / 2 + font / 3), cut(row_labels[i]), fontsize=font)
        total = sum(row) or 1
        for j, value in enumerate(row):
            share = value / total
            rect = pymupdf.Rect(left + j * cell, y, left + (j + 1) * cell, y + cell)
            fill = (1 - 0.75 * share, 1 - 0.55 * share, 1 - 0.15 * share)
            page.draw_rect(rect, color=(0.75, 0.75, 0.75), fill=fill, width=0.5)
            text = str(value)
            page.insert_text((rect.x0 + cell / 2 - font * 0.28 * len(text),
                              rect.y0 + cell / 2 + font / 3), text, fontsize=font,
                             color=(1, 1, 1) if share > 0.6 else (0, 0, 0))
    path = Path(path)
    page.get_pixmap(dpi=144).save(str(path))
    doc.close()
    return path


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def markdown_report(result: dict) -> str:
    metrics = result["metrics"]
    lines = [f"# {result['task']} v{result['version']}: evaluation", "",
             f"- data: {result['source']} ({result['examples']} examples)",
             f"- when: {result.get('created_at')}", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {_cell(v)} |" for k, v in metrics.items()
              if isinstance(v, (int, float)) and not isinstance(v, bool)]
    per = metrics.get("per_label") or metrics.get("per_type") or {}
    if per:
        lines += ["", "| label | precision | recall | f1 | support |", "|---|---|---|---|---|"]
        lines += [f"| {k} | {_cell(r.get('precision'))} | {_cell(r.get('recall'))} | "
                  f"{_cell(r.get('f1'))} | {r.get('support')} |" for k, r in per.items()]
    matrix, labels = metrics.get("confusion_matrix"), metrics.get("labels")
    if matrix and labels:
        rows, columns, title = _matrix_grid(matrix, labels, metrics.get("multi_label"))
        lines += ["", f"Confusion matrix, {title}:", "",
                  "| | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
        lines += [f"| {labels[i]} | " + " | ".join(str(v) for v in row) + " |"
                  for i, row in enumerate(rows)]
        if result.get("reports", {}).get("png"):
            lines += ["", f"![confusion matrix]({Path(result['reports']['png']).name})"]
    return "\n".join(lines) + "\n"
