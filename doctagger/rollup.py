"""Roll-up: a document's chunk predictions become its document tags.

``rollup_documents`` reads each document's predictions from a model version (outside any
transaction), asks the task type's ``rollup`` (or the defaults here: ``rollup_classes`` for
classification, ``rollup_spans`` for entities) for its tags, and replaces the document's
tags for the task a few documents per transaction. Each tag keeps its best supporting
chunks and their pages, so ``show`` and ``search`` can say why.

One rule per kind of value: ``rollup_classes`` and ``rollup_spans`` are the roll-ups of
the first-party classification and NER plugins too (their ``rollup`` calls them), so a
document gets the same tags whichever path computes them. A plugin that brings its own
says why (the keyword rules: a rule match has no probability to average).
"""
from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING

from doctagger.document_predictions import read as read_document_prediction
from doctagger.predictions import stored_prediction
from doctagger.tasktypes import ChunkPrediction, DocumentTag, Prediction, Task

if TYPE_CHECKING:  # the index module pulls in sqlite-utils: keep `--help` fast
    from doctagger.index import Index

DOCUMENTS_PER_WRITE = 32  # documents whose tags are replaced in one transaction
TOP_CHUNKS = 3  # supporting chunks kept per class tag
TOP_OCCURRENCES = 10  # supporting chunks kept per entity tag


def document_predictions(index: Index, model_id: int, document_id: int, *,
                         reviewed_out: bool = True) -> list[ChunkPrediction]:
    """One document's chunk predictions from a model, in document order."""
    review = " and p.review = 0" if reviewed_out else ""
    rows = index.query(
        "select c.id, c.page, c.text, p.value, p.score, p.scores from predictions p "
        "join chunks c on c.id = p.chunk_id "
        f"where p.model_id = ? and c.document_id = ?{review} order by c.seq",
        [model_id, document_id])
    return [ChunkPrediction(chunk_id=r["id"], page=r["page"], text=r["text"],
                            prediction=stored_prediction(r)) for r in rows]


def rollup(task: Task, task_type, items: list[ChunkPrediction]) -> list[DocumentTag]:
    """The task type's roll-up, or the default one when it has none."""
    fn = getattr(task_type, "rollup", None)
    if fn is not None:
        try:
            return list(fn(task, items))
        except NotImplementedError:
            pass
    if getattr(task_type, "value_kind", "class") == "spans":
        return rollup_spans(task, items)
    return rollup_classes(task, items)


def rollup_documents(index: Index, task: Task, task_type, model_id: int,
                     document_ids: Iterable[int], *, min_score: float | None = None) -> dict:
    """Replace the task's document tags of these documents with the roll-up of the model's
    chunk predictions. Returns {"tags": written, "untagged": documents left without one}."""
    from doctagger.index import now

    document_ids = list(document_ids)
    chunk_level = task.level != "document"
    out = {"tags": 0, "untagged": 0}
    for i in range(0, len(document_ids), DOCUMENTS_PER_WRITE):
        group = document_ids[i:i + DOCUMENTS_PER_WRITE]
        computed = []
        for document_id in group:
            items = document_predictions(index, model_id, document_id, reviewed_out=chunk_level)
            whole = None if chunk_level else read_document_prediction(index, model_id,
                                                                      document_id)
            if whole is not None and items:
                tags = from_document_prediction(task, whole, items)
            else:
                tags = rollup(task, task_type, items) if items else []
            if min_score is not None:
                tags = [t for t in tags if float(t.score) >= min_score]
            pages = {c.chunk_id: c.page for c in items}
            computed.append((document_id, tags, pages, bool(items)))
        stamp = now()
        with index.write("writing document tags") as db:
            for document_id, tags, pages, had_items in computed:
                db.execute("delete from document_tags where task_id = ? and document_id = ?",
                           [task.id, document_id])
                for tag in tags:
                    db["document_tags"].insert(_tag_row(task, model_id, document_id, tag,
                                                        pages, stamp))
                if not chunk_level and min_score is not None:
                    # a document-level item is the document: queue it when it got no tag
                    db.execute("update predictions set review = ? where model_id = ? and "
                               "chunk_id in (select id from chunks where document_id = ?)",
                               [int(not tags), model_id, document_id])
                out["tags"] += len(tags)
                out["untagged"] += int(had_items and not tags)
    return out


def _tag_row(task: Task, model_id: int, document_id: int, tag: DocumentTag,
             pages: dict[int, int | None], stamp: str) -> dict:
    chunk_ids = [int(c) for c in tag.chunk_ids]
    tag_pages: list[int] = []
    for c in chunk_ids:
        page = pages.get(c)
        if page is not None and page not in tag_pages:
            tag_pages.append(page)
    extra_page = (tag.extra or {}).get("page")
    if extra_page is not None and extra_page not in tag_pages:
        tag_pages.insert(0, extra_page)
    return {"task_id": task.id, "model_id": model_id, "document_id": document_id,
            "label": str(tag.label), "score": round(float(tag.score), 6),
            "chunks": json.dumps(chunk_ids), "pages": json.dumps(tag_pages),
            "extra": json.dumps(tag.extra or {}, ensure_ascii=False), "created_at": stamp}


def from_document_prediction(task: Task, prediction: Prediction, items: list[ChunkPrediction],
                             top: int = TOP_CHUNKS) -> list[DocumentTag]:
    """The tags of a document that its model predicted as a whole text
    (doctagger.document_predictions): the label(s) it predicted, with that prediction's
    score; the support is the ``top`` chunks with the highest probability of the label."""
    value = prediction.value
    labels = value if isinstance(value, list) else [value]
    scores = prediction.scores or {}
    tags = []
    for label in labels:
        if label is None:
            continue
        ranked = sorted(items, key=lambda i: (-_label_probabilities(task, i.prediction).get(
            str(label), 0.0), i.chunk_id))
        score = float(scores.get(str(label), prediction.score))
        tags.append(DocumentTag(label=str(label), score=score,
                                chunk_ids=[i.chunk_id for i in ranked[:top]],
                                extra={"aggregate": "document prediction", "chunks": len(items)}))
    tags.sort(key=lambda t: (-t.score, t.label))
    return tags


def _label_probabilities(task: Task, prediction: Prediction) -> dict[str, float]:
    """Per-label probabilities of one prediction: its ``scores`` when it has them, else
    its score on the label(s) it predicted."""
    if prediction.scores:
        return {str(k): float(v) for k, v in prediction.scores.items()}
    value = prediction.value
    labels = value if isinstance(value, list) else [value]
    return {str(label): float(prediction.score) for label in labels if label is not None}


def label_probabilities(task: Task, prediction: Prediction,
                        labels: list[str]) -> dict[str, float]:
    """Every label's probability in one chunk prediction: its ``scores`` when it has them.
    A prediction read back with only ``value`` and ``score``: single-label, ``score`` for
    its label and ``1 - score`` shared among the others; multi-label, a vote (1 for a label
    it has, 0 otherwise)."""
    if prediction.scores:
        return {label: float(prediction.scores.get(label, 0.0)) for label in labels}
    value = prediction.value
    if task.multi_label:
        chosen = {str(v) for v in (value or [])}
        return {label: 1.0 if label in chosen else 0.0 for label in labels}
    score = float(prediction.score)
    rest = (1.0 - score) / max(1, len(labels) - 1)
    return {label: score if label == str(value) else rest for label in labels}


def _class_labels(task: Task, items: list[ChunkPrediction]) -> list[str]:
    """The task's labels, then any other label a prediction knows (a model may know a label
    the task no longer lists)."""
    labels = [str(label) for label in task.labels]
    for item in items:
        value = item.prediction.value
        for label in list(item.prediction.scores or {}) + (
                value if isinstance(value, list) else [value]):
            if label is not None and str(label) not in labels:
                labels.append(str(label))
    return labels


def _thresholds(items: list[ChunkPrediction], labels: list[str]) -> dict[str, float]:
    """Multi-label thresholds the predictor attached to its predictions, else 0.5."""
    for item in items:
        found = getattr(item.prediction, "thresholds", None)
        if found:
            return {label: float(found.get(label, 0.5)) for label in labels}
    return {label: 0.5 for label in labels}


def rollup_classes(task: Task, items: list[ChunkPrediction],
                   top: int = TOP_CHUNKS) -> list[DocumentTag]:
    """The roll-up of class values, for the core and every first-party classifier.

    - chunk-level task: a document carries each label some chunk has; the tag's score is
      the best such chunk's probability of it, its support the best ``top`` such chunks;
    - document-level task: the mean of the chunk probabilities (the aggregate the held-out
      evaluation measures: ``train``, ``eval`` and ``tag`` agree), single-label the best
      label, multi-label every label whose mean reaches its threshold (the per-label ones
      the model was tuned with, else 0.5); support: the ``top`` chunks most sure of it.

    A model that predicts a document as a whole text skips this (``from_document_prediction``).
    """
    if not items:
        return []
    labels = _class_labels(task, items)
    if task.level != "document":
        support: dict[str, list[tuple[float, int]]] = defaultdict(list)
        for item in items:
            value = item.prediction.value
            probs = label_probabilities(task, item.prediction, labels)
            for label in (value if isinstance(value, list) else [value]):
                if label is not None:
                    support[str(label)].append((probs.get(str(label),
                                                          float(item.prediction.score)),
                                                item.chunk_id))
        tags = []
        for label, found in support.items():
            found.sort(key=lambda s: (-s[0], s[1]))
            tags.append(DocumentTag(label=label, score=found[0][0],
                                    chunk_ids=[c for _, c in found[:top]],
                                    extra={"chunks_with_label": len(found)}))
        return sorted(tags, key=lambda t: (-t.score, t.label))
    table = [(item.chunk_id, label_probabilities(task, item.prediction, labels))
             for item in items]
    n = len(table)
    mean = {label: sum(p[label] for _, p in table) / n for label in labels}

    def support_of(label):
        ranked = sorted(table, key=lambda row: (-row[1][label], row[0]))
        return [chunk for chunk, _ in ranked[:top]]

    extra = {"aggregate": "mean of chunk probabilities", "chunks": n}
    if task.multi_label:
        thresholds = _thresholds(items, labels)
        tags = [DocumentTag(label=label, score=mean[label], chunk_ids=support_of(label),
                            extra=dict(extra, threshold=thresholds[label]))
                for label in labels if mean[label] >= thresholds[label]]
        return sorted(tags, key=lambda t: (-t.score, t.label))
    best = max(labels, key=lambda label: (mean[label], -labels.index(label)))
    return [DocumentTag(label=best, score=mean[best], chunk_ids=support_of(best), extra=extra)]


def _norm_entity(text: str) -> str:
    return " ".join(text.split()).casefold()


def rollup_spans(task: Task, items: list[ChunkPrediction],
                 top: int = TOP_OCCURRENCES) -> list[DocumentTag]:
    """The roll-up of entity spans, for the core and the first-party NER plugin: one tag
    per distinct entity (label and surface text, case and white space folded) in the
    document; its score is the best mention's; its support the (up to ``top``) chunks it
    occurs in, the surest mention first; ``extra`` the first mention in reading order (its
    text, page, chunk and offsets in the chunk) and ``count``, the number of mentions.
    Tags come surest first."""
    entities: dict[tuple[str, str], dict] = {}
    for item in items:
        for span in item.prediction.value or []:
            if not isinstance(span, dict):
                continue
            start, end = int(span["start"]), int(span["end"])
            surface = item.text[start:end]
            key = (str(span["label"]), _norm_entity(surface))
            if not key[1]:
                continue
            score = float(span.get("score", item.prediction.score))
            entry = entities.setdefault(key, {
                "chunks": {}, "count": 0,
                "extra": {"text": " ".join(surface.split()), "page": item.page,
                          "chunk_id": item.chunk_id, "start": start, "end": end}})
            entry["count"] += 1
            entry["chunks"][item.chunk_id] = max(score, entry["chunks"].get(item.chunk_id, 0.0))
    tags = []
    for (label, _), entry in entities.items():
        ranked = sorted(entry["chunks"].items(), key=lambda kv: (-kv[1], kv[0]))
        tags.append(DocumentTag(label=label, score=ranked[0][1],
                                chunk_ids=[c for c, _ in ranked[:top]],
                                extra=dict(entry["extra"], count=entry["count"])))
    tags.sort(key=lambda t: (-t.score, t.label, t.extra["text"].casefold()))
    return tags


def mean_chunk_scores(items: list[ChunkPrediction]) -> dict[str, float]:
    """Every label's mean probability over a document's chunks, when every chunk has
    per-label ``scores`` (a chunk without a label counts 0); {} otherwise."""
    if not items or not all(i.prediction.scores for i in items):
        return {}
    labels = sorted({label for i in items for label in i.prediction.scores})
    return {label: sum(float(i.prediction.scores.get(label, 0.0)) for i in items) / len(items)
            for label in labels}
