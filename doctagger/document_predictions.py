"""Predictions for whole documents, from models that read a document as one text.

Most models predict chunks, and a document-level task's tags are rolled up from its chunk
predictions (doctagger.rollup). A model trained on whole documents can do better: the
classification head that reads a document's first 256 tokens (its title and opening
clauses, where a contract says what it is) scored 0.84 macro-F1 on the contract PDFs where
the mean of its chunk predictions scored 0.63 (docs/classification.md). Such a model says
so in its version's info (``"document_prediction": "whole text"``) and its predictor has
``predict_documents(documents)`` (each document given as its chunk texts, in order). Then
``tag`` stores one prediction per document here (table ``document_predictions``) and the
document's tags are that prediction; the chunk predictions still give the supporting
chunks, and are what ``show`` lists for each chunk. A fine-tuned classifier of a
document-level task reads a document's first 128 tokens the same way (0.948 macro-F1 on
the unseen contracts). ``label --strategy uncertain`` and ``review`` ask such a model
about documents as ``tag`` does (doctagger.selection).
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Callable, Iterable

from doctagger.errors import PluginError
from doctagger.predictions import prediction_problem, predictor_of, stored_prediction
from doctagger.tasktypes import Prediction, Task

if TYPE_CHECKING:
    from doctagger.index import Index

#: the value of a version's info["document_prediction"] that makes tag predict documents
WHOLE_TEXT = "whole text"


def reads_documents(task: Task, model: dict) -> bool:
    """Whether the model version predicts whole documents of this (document-level) task."""
    if task.level != "document":
        return False
    info = model.get("info") or "{}"
    if isinstance(info, str):
        try:
            info = json.loads(info)
        except ValueError:
            return False
    return isinstance(info, dict) and info.get("document_prediction") == WHOLE_TEXT


def missing(index: Index, model_id: int, document_ids: Iterable[int]) -> list[int]:
    """The documents among ``document_ids`` with no prediction from the model."""
    ids = sorted(set(int(d) for d in document_ids))
    if not ids:
        return []
    have = set()
    for i in range(0, len(ids), 500):
        part = ids[i:i + 500]
        have |= {r["document_id"] for r in index.query(
            f"select document_id from document_predictions where model_id = ? and "
            f"document_id in ({', '.join('?' * len(part))})", [model_id, *part])}
    return [d for d in ids if d not in have]


def predict_and_store(index: Index, task: Task, task_type, model_id: int,
                      document_ids: Iterable[int], get_predictor: Callable[[], object],
                      *, batch: int = 16) -> int:
    """Predict the given documents as whole texts and store the predictions (replacing the
    model's earlier ones). Each prediction is checked as ``tag`` checks chunk predictions.
    Returns how many were stored."""
    from doctagger.index import now

    ids = sorted(set(int(d) for d in document_ids))
    stored = 0
    for i in range(0, len(ids), batch):
        group = ids[i:i + batch]
        documents = []
        for document_id in group:
            documents.append([r["text"] for r in index.query(
                "select text from chunks where document_id = ? order by seq", [document_id])])
        keep = [(d, parts) for d, parts in zip(group, documents) if parts]
        if not keep:
            continue
        predictor = get_predictor()
        got = list(predictor.predict_documents([parts for _, parts in keep]))
        if len(got) != len(keep):
            raise PluginError(f"{predictor_of(task)} returned {len(got)} predictions for "
                              f"{len(keep)} documents; report this to the plugin's authors")
        for (_, parts), prediction in zip(keep, got):
            problem = prediction_problem(task_type, task, prediction, "\n".join(parts))
            if problem:
                raise PluginError(f"{predictor_of(task)} {problem}; report this to the "
                                  "plugin's authors")
        stamp = now()
        with index.write("writing document predictions") as db:
            for (document_id, _), p in zip(keep, got):
                db.execute("delete from document_predictions where model_id = ? and "
                           "document_id = ?", [model_id, document_id])
                db.execute(
                    "insert into document_predictions (task_id, model_id, document_id, value, "
                    "score, scores, created_at) values (?, ?, ?, ?, ?, ?, ?)",
                    [task.id, model_id, document_id, json.dumps(p.value, ensure_ascii=False),
                     float(p.score), json.dumps(p.scores) if p.scores else None, stamp])
                stored += 1
    return stored


def read(index: Index, model_id: int, document_id: int) -> Prediction | None:
    row = index.one("select value, score, scores from document_predictions where "
                    "model_id = ? and document_id = ?", [model_id, document_id])
    return stored_prediction(row) if row else None
