"""Tagging: run a model version over the index, write predictions and document tags.

How ``tag_task`` keeps memory flat and other writers unblocked, however large the index:

- chunks are read with keyset pagination (``where id > ? order by id limit N``), a page
  of a few thousand at a time; each page is sorted by length into batches, so padding is
  small, and predicted under ``torch.inference_mode`` *outside* any transaction;
- each batch is written in one short transaction, as an upsert on the
  ``UNIQUE (model_id, chunk_id)`` key: a run killed at any moment leaves no duplicates,
  and the next run carries on with the chunks that still lack a prediction;
- a text seen earlier in the run (the exact same text) is not predicted again
  (:class:`PredictionCache`, bounded);
- every prediction is checked before it is stored (:mod:`doctagger.predictions`): a
  broken one stops the run with a PluginError and nothing of its batch is written;
- after each page, the documents it touched are rolled up into document tags (the task
  type's ``rollup``), read outside a transaction, then written a few documents per
  transaction: that task's tags of a document are replaced as a whole.

``--min-score``: a chunk prediction scored below it is stored with ``review = 1`` (queued
for ``doctagger label TASK --review``) and does not count towards document tags; a
document tag scored below it is not written. For document-level tasks every chunk counts
towards the aggregate, and a document left without any tag has its predictions queued.

The roll-up into document tags is :mod:`doctagger.rollup` (its default roll-ups,
:func:`rollup_classes` and :func:`rollup_spans`, are importable from here too, as plugins
have done); checking and calling predictors is :mod:`doctagger.predictions`.
"""
from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any, Callable, Iterator

from doctagger.document_predictions import missing as missing_documents
from doctagger.document_predictions import predict_and_store as predict_documents
from doctagger.document_predictions import reads_documents
from doctagger.errors import NotFoundError, PluginError
from doctagger.predictions import (is_score, label_value, predict, prediction_problem,  # noqa: F401
                                   predictor_of, stored_prediction, value_problem)
from doctagger.rollup import (DOCUMENTS_PER_WRITE, TOP_CHUNKS, TOP_OCCURRENCES,  # noqa: F401
                              document_predictions, rollup, rollup_classes, rollup_documents,
                              rollup_spans)
from doctagger.tasktypes import Prediction, Task

if TYPE_CHECKING:  # the index module pulls in sqlite-utils: keep `--help` fast
    from doctagger.index import Index

PAGE_SIZE = 2048  # chunks read per page
RUNS_DIR = ".tagging"  # in the index folder: a marker file per tag run in progress


# -- model versions -----------------------------------------------------------------------
def resolve_model(index: Index, task: Task, task_type, version: int | str | None = None,
                  *, create_rules: bool = True) -> dict | None:
    """The model version record (doctagger.registry) to tag with: ``version``, else the
    task's active version.

    A task type that needs no training (rule-based) gets a "rules" version registered and
    activated on first use, so that its predictions and tags have a model version too.
    Returns None when there is no model and none can be made."""
    from doctagger import registry

    if version is not None:
        return registry.get_version(index, task, version)
    try:
        return registry.get_version(index, task)
    except NotFoundError:
        pass
    if getattr(task_type, "needs_training", True) or not create_rules:
        return None
    return register_rules_version(index, task)


def register_rules_version(index: Index, task: Task) -> dict:
    """Register (and activate) an empty model version for a rule-based task type."""
    from doctagger import registry

    version, tmp_dir = registry.new_version_dir(index, task)
    return registry.register_version(
        index, task, version, tmp_dir, base_model=None, method="rules", params={},
        data_fingerprint=None, metrics={},
        info={"rules": True, "note": "rule-based task type: nothing was trained"})


def require_model(index: Index, task: Task, task_type, version=None) -> dict:
    row = resolve_model(index, task, task_type, version)
    if row is None:
        raise NotFoundError(f"task '{task.name}' has no trained model yet; train one with "
                            f"'doctagger train {task.name}' (or pick one with --model)")
    return row


def load_predictor(index: Index, task: Task, task_type, model: dict):
    """The task type's predictor for a models row."""
    from doctagger import registry

    return task_type.load(task, registry.model_dir(index, task, model["version"]))


# -- tagging ------------------------------------------------------------------------------
def count_to_tag(index: Index, model_id: int, *, all: bool = False) -> int:
    if all:
        return index.scalar("select count(*) from chunks") or 0
    return index.scalar(
        "select count(*) from chunks c where not exists (select 1 from predictions p "
        "where p.model_id = ? and p.chunk_id = c.id)", [model_id]) or 0


def iter_chunk_pages(index: Index, model_id: int, *, all: bool = False,
                     page_size: int = PAGE_SIZE) -> Iterator[list[dict]]:
    """Pages of chunks to tag, in id order, keyset-paginated (never an OFFSET)."""
    missing = ("" if all else " and not exists (select 1 from predictions p "
               "where p.model_id = ? and p.chunk_id = c.id)")
    sql = (f"select c.id, c.document_id, c.page, c.text from chunks c where c.id > ?{missing} "
           f"order by c.id limit ?")
    last = 0
    while True:
        params = [last] + ([] if all else [model_id]) + [page_size]
        rows = index.query(sql, params)
        if not rows:
            return
        yield rows
        last = rows[-1]["id"]
        if len(rows) < page_size:
            return


def batches_by_length(rows: list[dict], batch_size: int) -> Iterator[list[dict]]:
    ordered = sorted(rows, key=lambda r: len(r["text"]))
    for i in range(0, len(ordered), batch_size):
        yield ordered[i:i + batch_size]


class PredictionCache:
    """Predictions by exact chunk text, so a text that occurs many times (a header, a
    footer, boilerplate) is predicted once per run. Exact, not ``text_hash`` (which folds
    white space): NER spans are character offsets into the text. Bounded (least recently
    used out), so memory stays flat; batches are sorted by length, so copies of a text meet
    in the same or a nearby batch anyway."""

    def __init__(self, size: int = 10_000, *, task_type=None, task: Task | None = None):
        from collections import OrderedDict

        self.size = size
        self.task_type, self.task = task_type, task  # given: new predictions are checked
        self.items: OrderedDict = OrderedDict()
        self.hits = 0

    def predict(self, predictor, rows: list[dict]) -> list[Prediction]:
        """One Prediction per row; only texts not seen in this run reach the model."""
        import hashlib

        keys = [hashlib.blake2b(r["text"].encode("utf-8", "surrogatepass"),
                                digest_size=16).digest() for r in rows]
        todo: dict = {}
        for key, row in zip(keys, rows):
            if key in self.items:
                self.items.move_to_end(key)
            else:
                todo.setdefault(key, row["text"])
        self.hits += len(rows) - len(todo)
        for key, prediction in zip(todo, predict(predictor, list(todo.values()),
                                                 task_type=self.task_type, task=self.task)):
            self.items[key] = prediction
        out = [self.items[key] for key in keys]
        while len(self.items) > self.size:
            self.items.popitem(last=False)
        return out


def _json_value(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=isinstance(value, dict))


def _json_scores(scores: dict | None) -> str | None:
    if not scores:
        return None
    return json.dumps({str(k): round(float(v), 6) for k, v in scores.items()},
                      ensure_ascii=False)


def write_predictions(index: Index, task: Task, model_id: int, rows: list[dict],
                      predictions: list[Prediction], uncertainties: list[float | None],
                      review: list[int]) -> None:
    """Upsert one batch of predictions in one short transaction."""
    from doctagger.index import now

    stamp = now()
    try:
        values = [(task.id, model_id, r["id"], _json_value(p.value), float(p.score),
                   _json_scores(p.scores), u, rv, stamp)
                  for r, p, u, rv in zip(rows, predictions, uncertainties, review)]
    except (TypeError, ValueError, AttributeError) as exc:  # nothing of the batch is written
        raise PluginError(f"{predictor_of(task)} returned a prediction that cannot be stored "
                          f"({type(exc).__name__}: {exc}); report this to the plugin's "
                          "authors") from None
    with index.write("writing predictions") as db:
        db.conn.executemany(
            "insert into predictions (task_id, model_id, chunk_id, value, score, scores, "
            "uncertainty, review, created_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "on conflict (model_id, chunk_id) do update set value = excluded.value, "
            "score = excluded.score, scores = excluded.scores, "
            "uncertainty = excluded.uncertainty, review = excluded.review, "
            "created_at = excluded.created_at", values)


def uncertainty_of(task_type, task: Task, prediction: Prediction) -> float:
    """The task type's uncertainty of a prediction (default: 1 - score)."""
    fn = getattr(task_type, "uncertainty", None)
    if fn is None:
        return 1.0 - float(prediction.score)
    try:
        return float(fn(task, prediction))
    except NotImplementedError:
        return 1.0 - float(prediction.score)


def _begin_run(index: Index, model_id: int):
    """Mark a tag run of ``model_id`` as in progress. Returns its marker file and the
    markers of earlier runs of that model whose process is gone (killed, crashed): those
    may have written predictions without rolling them up."""
    from doctagger.registry import pid_alive

    folder = index.path / RUNS_DIR
    folder.mkdir(exist_ok=True)
    unfinished = []
    for marker in folder.glob(f"model-{model_id}-*.running"):
        pid = marker.stem.rsplit("-", 1)[-1]
        if pid.isdigit() and not pid_alive(int(pid)):
            unfinished.append(marker)
    mine = folder / f"model-{model_id}-{os.getpid()}.running"
    mine.touch()
    return mine, unfinished


def _unrolled_documents(index: Index, model_id: int) -> set[int]:
    """Documents whose every chunk has a prediction from the model: a run goes over the
    others anyway, and rolls them up then."""
    return {r["document_id"] for r in index.query(
        "select distinct c.document_id from predictions p join chunks c on c.id = p.chunk_id "
        "where p.model_id = ? and not exists (select 1 from chunks c2 where "
        "c2.document_id = c.document_id and not exists (select 1 from predictions p2 "
        "where p2.model_id = ? and p2.chunk_id = c2.id))", [model_id, model_id])}


def tag_task(index: Index, task_name: str, *, version: int | str | None = None,
             all: bool = False, batch_size: int = 64, min_score: float | None = None,
             progress: Callable[[int], None] | None = None,
             page_size: int = PAGE_SIZE) -> dict:
    """Tag the chunks of the index that lack a prediction from the model version (every
    chunk with ``all``), then roll the predictions up into document tags.

    ``progress(n)`` is called after each batch with the number of chunks it held.
    Returns a summary (the ``--json`` output of ``doctagger tag``)."""
    from doctagger.plugins import get_task_type

    started = time.monotonic()
    task = index.task(task_name)
    task_type = get_task_type(task.type)
    model = require_model(index, task, task_type, version)
    to_tag = count_to_tag(index, model["id"], all=all)
    summary = {"task": task.name, "level": task.level, "model_version": model["version"],
               "model_id": model["id"],
               "chunks": 0, "repeated_texts": 0, "documents": 0, "document_tags": 0,
               "review": 0, "review_labelled": 0,
               "untagged_documents": 0, "min_score": min_score, "to_tag": to_tag,
               "documents_predicted": 0}
    whole = reads_documents(task, model)  # the model predicts documents as whole texts
    loaded: dict = {}

    def get_predictor():
        if "predictor" not in loaded:
            loaded["predictor"] = load_predictor(index, task, task_type, model)
        return loaded["predictor"]

    def roll(documents, fresh: bool = False):
        """Roll documents up into tags; ``fresh``: their chunks were predicted just now, so
        a whole-document prediction is made again too (else only where one is missing)."""
        if whole:
            todo = sorted(documents) if fresh else missing_documents(index, model["id"],
                                                                     documents)
            if todo:
                summary["documents_predicted"] += predict_documents(
                    index, task, task_type, model["id"], todo, get_predictor)
        rolled = rollup_documents(index, task, task_type, model["id"], sorted(documents),
                                  min_score=min_score)
        summary["documents"] += len(documents)
        summary["document_tags"] += rolled["tags"]
        summary["untagged_documents"] += rolled["untagged"]

    marker, unfinished = _begin_run(index, model["id"])
    if unfinished and not all:
        # an earlier run died between writing predictions and rolling them up
        roll(_unrolled_documents(index, model["id"]))
    for old in unfinished:
        old.unlink(missing_ok=True)
    if to_tag:
        clock = time.monotonic()
        predictor = get_predictor()
        summary["load_seconds"] = round(time.monotonic() - clock, 2)
        predict_seconds = 0.0
        cache = PredictionCache(task_type=task_type, task=task)  # checks what it predicts
        chunk_level = task.level != "document"
        carry = None  # the page's last document may go on in the next page: roll it up then
        for page in iter_chunk_pages(index, model["id"], all=all, page_size=page_size):
            for batch in batches_by_length(page, max(1, int(batch_size))):
                clock = time.monotonic()
                preds = cache.predict(predictor, batch)
                predict_seconds += time.monotonic() - clock
                review = [int(chunk_level and min_score is not None
                              and float(p.score) < min_score) for p in preds]
                write_predictions(index, task, model["id"], batch, preds,
                                  [uncertainty_of(task_type, task, p) for p in preds], review)
                summary["chunks"] += len(batch)
                if progress:
                    progress(len(batch))
            documents = {r["document_id"] for r in page} | ({carry} if carry else set())
            carry = page[-1]["document_id"]
            roll(documents - {carry}, fresh=True)
        if carry is not None:
            roll({carry}, fresh=True)
        summary["repeated_texts"] = cache.hits  # chunks whose text was predicted already
        summary["runtime"] = str(getattr(predictor, "runtime", "") or "") or None
        summary["predict_seconds"] = round(predict_seconds, 2)
    # Documents whose tags came from another version (after `models use` rolled back to a
    # version that had already predicted them): roll them up again from this version.
    stale = [r["document_id"] for r in index.query(
        "select distinct g.document_id from document_tags g where g.task_id = ? "
        "and g.model_id != ? and exists (select 1 from predictions p join chunks c "
        "on c.id = p.chunk_id where p.model_id = ? and c.document_id = g.document_id)",
        [task.id, model["id"], model["id"]])]
    if stale:
        roll(set(stale))
    summary.update(review_counts(index, task, model["id"]))
    marker.unlink(missing_ok=True)
    summary["seconds"] = round(time.monotonic() - started, 2)
    return summary


def review_counts(index: Index, task: Task, model_id: int) -> dict:
    """Items the model queued for review (under ``--min-score``): chunks, or documents for
    document-level tasks. ``review``: those without a label for the task, what ``doctagger
    label TASK --review`` asks about (the same test of "labelled" as
    :mod:`doctagger.selection`); ``review_labelled``: queued ones labelled already."""
    from doctagger.selection import _unlabelled_chunks, _unlabelled_documents

    params = {"task": task.id, "model": model_id}
    if task.level == "document":
        queued = ("from documents d where d.id in (select c.document_id from predictions p "
                  "join chunks c on c.id = p.chunk_id where p.model_id = :model "
                  "and p.review = 1)")
        unlabelled = _unlabelled_documents("d")
    else:
        queued = "from predictions p join chunks c on c.id = p.chunk_id " \
                 "where p.model_id = :model and p.review = 1"
        unlabelled = _unlabelled_chunks("c")
    total = index.scalar(f"select count(*) {queued}", params) or 0
    review = index.scalar(f"select count(*) {queued} and {unlabelled}", params) or 0
    return {"review": review, "review_labelled": total - review}


def document_tag_versions(index: Index, task: Task) -> list[int]:
    """The model versions whose document tags the task's documents carry now."""
    return [r["version"] for r in index.query(
        "select distinct m.version from document_tags g join models m on m.id = g.model_id "
        "where g.task_id = ? order by m.version", [task.id])]


__all__ = ["tag_task", "resolve_model", "require_model", "load_predictor", "predict",
           "prediction_problem", "value_problem", "is_score", "label_value", "predictor_of",
           "uncertainty_of", "stored_prediction", "review_counts", "document_tag_versions",
           "rollup", "rollup_documents", "rollup_classes", "rollup_spans",
           "document_predictions", "register_rules_version"]
