"""Which item ``doctagger label`` asks next, and why: the item queues of the strategies.

- ``sequential``: unlabelled chunks (documents, for document-level tasks) in document order;
- ``random``: unlabelled items in random order (``seed`` makes it repeatable);
- ``uncertain``: the model predicts a sample of ``pool`` unlabelled items (stored
  predictions of that version are reused); they are ranked most uncertain first, by the task
  type's ``uncertainty`` (entropy for single-label classification), and the classes the model
  predicts take turns: the most uncertain item predicted A, then the most uncertain predicted
  B, ... (an item without one predicted class, e.g. multi-label, spans or no answer, comes
  once no class item left ranks above it). Near-duplicates of an item already shown
  (MinHash over word 3-grams, confirmed by exact Jaccard) are left out.
  docs/active_learning.md has the measurements behind this order;
- ``review``: the model's predictions on unlabelled items, those queued by ``--min-score``
  first, then the least confident.

Each queue is a lazy iterator of :class:`Item`, with a ``why`` for the user. Items labelled
meanwhile (here or by another labeller) are dropped when their turn comes, and a chunk
whose text (white space folded) was already labelled for the task is never asked: boilerplate
is asked once.
"""
from __future__ import annotations

import hashlib
import random
import re
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator

from doctagger.document_predictions import reads_documents
from doctagger.tasktypes import Prediction, Task

if TYPE_CHECKING:  # the index module pulls in sqlite-utils: keep `--help` fast
    from doctagger.index import Index

DEFAULT_POOL = 2000
OPENING_CHUNKS = 3  # chunks shown for a document-level item
OPENING_CHARS = 1500
PREDICT_BATCH = 32
DOCUMENT_CHUNKS = 8  # chunks predicted per untagged document for --strategy uncertain
DUPLICATE_JACCARD = 0.8


@dataclass
class Item:
    """One thing to label: a chunk, or a whole document for document-level tasks."""

    kind: str  # "chunk" | "document"
    document_id: int
    chunk_id: int | None
    text: str  # the chunk text; a document's opening chunks
    path: str
    title: str | None = None
    page: int | None = None
    page_end: int | None = None
    why: str = ""
    prediction: Prediction | None = None  # the model's guess, when there is one
    queued: bool = False  # review: the prediction was under --min-score

    @property
    def target(self) -> dict:
        if self.kind == "document":
            return {"document_id": self.document_id}
        return {"chunk_id": self.chunk_id}


# -- SQL pieces --------------------------------------------------------------------------
def _unlabelled_chunks(alias: str = "c") -> str:
    # the text_hash list is evaluated once (not correlated), the chunk test uses an index
    return (f"not exists (select 1 from labels l where l.task_id = :task and "
            f"l.target = 'chunk' and l.chunk_id = {alias}.id) and {alias}.text_hash not in "
            f"(select l2.text_hash from labels l2 where l2.task_id = :task and "
            f"l2.target = 'chunk' and l2.text_hash is not null)")


def _unlabelled_documents(alias: str = "d") -> str:
    return (f"not exists (select 1 from labels l where l.task_id = :task and "
            f"l.target = 'document' and l.document_id = {alias}.id) "
            f"and {alias}.chunk_count > 0")


def load_item(index: Index, task: Task, ref: int, *, why: str = "",
              prediction: Prediction | None = None, queued: bool = False,
              unlabelled_only: bool = True) -> Item | None:
    """The item with id ``ref`` (a chunk id, or a document id for document-level tasks);
    None when it is gone or (``unlabelled_only``) was labelled meanwhile."""
    params = {"task": task.id, "ref": ref}
    if task.level == "document":
        cond = f" and {_unlabelled_documents()}" if unlabelled_only else ""
        doc = index.one(f"select d.* from documents d where d.id = :ref{cond}", params)
        if doc is None:
            return None
        parts, size = [], 0
        for c in index.query("select text from chunks where document_id = ? order by seq limit ?",
                             [doc["id"], OPENING_CHUNKS]):
            parts.append(c["text"])
            size += len(c["text"])
            if size >= OPENING_CHARS:
                break
        return Item("document", doc["id"], None, "\n\n".join(parts), doc["path"], doc["title"],
                    1 if doc["pages"] else None, doc["pages"], why, prediction, queued)
    cond = f" and {_unlabelled_chunks()}" if unlabelled_only else ""
    row = index.one(
        "select c.id, c.document_id, c.text, c.page, c.page_end, d.path, d.title "
        f"from chunks c join documents d on d.id = c.document_id where c.id = :ref{cond}", params)
    if row is None:
        return None
    return Item("chunk", row["document_id"], row["id"], row["text"], row["path"], row["title"],
                row["page"], row["page_end"], why, prediction, queued)


def unlabelled_ids(index: Index, task: Task) -> list[int]:
    if task.level == "document":
        sql = f"select d.id from documents d where {_unlabelled_documents()} order by d.id"
    else:
        sql = f"select c.id from chunks c where {_unlabelled_chunks()} order by c.id"
    return [r[0] for r in index.conn.execute(sql, {"task": task.id}).fetchall()]


# -- strategies --------------------------------------------------------------------------
def sequential(index: Index, task: Task, page_size: int = 200) -> Iterator[Item]:
    """Unlabelled items in document order (keyset-paginated, so labels saved meanwhile,
    here or by another labeller, are never asked again)."""
    if task.level == "document":
        sql = (f"select d.id, d.id as doc, 0 as seq from documents d where "
               f"{_unlabelled_documents()} and d.id > :doc order by d.id limit :n")
    else:
        sql = (f"select c.id, c.document_id as doc, c.seq from chunks c where "
               f"{_unlabelled_chunks()} and (c.document_id, c.seq) > (:doc, :seq) "
               "order by c.document_id, c.seq limit :n")
    doc, seq = -1, -1
    while True:
        rows = index.query(sql, {"task": task.id, "doc": doc, "seq": seq, "n": page_size})
        for r in rows:
            doc, seq = r["doc"], r["seq"]
            item = load_item(index, task, r["id"], why="next unlabelled item in document order")
            if item is not None:
                yield item
        if len(rows) < page_size:
            return


def random_order(index: Index, task: Task, seed: int | None = None) -> Iterator[Item]:
    ids = unlabelled_ids(index, task)
    random.Random(seed).shuffle(ids)
    why = "random pick" + (f" (seed {seed})" if seed is not None else "")
    for ref in ids:
        item = load_item(index, task, ref, why=why)
        if item is not None:
            yield item


def explain(prediction: Prediction, uncertainty: float) -> str:
    """Why an item was picked: "margin 0.04 between A (0.52) and B (0.48)", ..."""
    scores = prediction.scores or {}
    if len(scores) >= 2:
        (a, pa), (b, pb) = sorted(scores.items(), key=lambda kv: -kv[1])[:2]
        return (f"margin {pa - pb:.2f} between {a} ({pa:.2f}) and {b} ({pb:.2f}); "
                f"uncertainty {uncertainty:.2f}")
    value = prediction.value
    if isinstance(value, list) and value and isinstance(value[0], dict):
        scored = [s["score"] for s in value if "score" in s]
        if scored:
            return (f"{len(value)} entities predicted, least sure {min(scored):.2f}; "
                    f"uncertainty {uncertainty:.2f}")
        return f"{len(value)} entities predicted; uncertainty {uncertainty:.2f}"
    if isinstance(value, list):
        shown = ", ".join(map(str, value)) or "no label"
    else:
        shown = str(value)
    return (f"model says {shown} with score {float(prediction.score):.2f}; "
            f"uncertainty {uncertainty:.2f}")


def _sample_ids(index: Index, task: Task, pool: int, seed: int | None) -> list[int]:
    ids = unlabelled_ids(index, task)
    if len(ids) <= pool:
        return ids
    return sorted(random.Random(seed).sample(ids, pool))


def document_prediction(task: Task, task_type, items) -> Prediction | None:
    """A document-level value from a document's chunk predictions: the roll-up's tags,
    and as ``scores`` the mean probability of every label over the chunks (when the
    chunks have them), so a margin can be told."""
    from doctagger.tagging import rollup

    tags = rollup(task, task_type, items)
    if not tags:
        return None
    if task.multi_label:
        value = sorted(t.label for t in tags)
        score = min(float(t.score) for t in tags)
    else:
        value, score = tags[0].label, float(tags[0].score)
    from doctagger.rollup import mean_chunk_scores

    scores = mean_chunk_scores(items) or {t.label: float(t.score) for t in tags}
    return Prediction(value, score, scores)


def _whole_document_predictions(index: Index, task: Task, task_type, model: dict,
                                predictor_factory, refs: list[int]) -> dict:
    """A model that predicts documents as whole texts (doctagger.document_predictions) is
    asked as ``tag`` asks it: its stored document predictions, else the documents
    predicted whole (in batches), not a roll-up of chunk predictions that can contradict
    the document's tag."""
    from doctagger.document_predictions import read
    from doctagger.tagging import uncertainty_of

    out: dict[int, tuple[Prediction, float | None]] = {}
    missing = []
    for ref in refs:
        prediction = read(index, model["id"], ref)
        if prediction is None:
            missing.append(ref)
        else:
            out[ref] = (prediction, uncertainty_of(task_type, task, prediction))
    for i in range(0, len(missing), PREDICT_BATCH):
        part = missing[i:i + PREDICT_BATCH]
        documents = [[r["text"] for r in index.query(
            "select text from chunks where document_id = ? order by seq", [ref])]
            for ref in part]
        keep = [(ref, parts) for ref, parts in zip(part, documents) if parts]
        if not keep:
            continue
        got = predictor_factory().predict_documents([parts for _, parts in keep])
        for (ref, _), prediction in zip(keep, got):
            out[ref] = (prediction, uncertainty_of(task_type, task, prediction))
    return out


def predict_items(index: Index, task: Task, task_type, model: dict, predictor_factory,
                  refs: list[int]) -> dict[int, tuple[Prediction, float | None]]:
    """Predictions for chunk ids (or document ids, document-level): stored ones of the
    model are reused, the rest predicted in batches."""
    from doctagger.tagging import (document_predictions, predict, stored_prediction,
                                   uncertainty_of)
    from doctagger.tasktypes import ChunkPrediction

    out: dict[int, tuple[Prediction, float | None]] = {}
    if task.level == "document" and reads_documents(task, model):
        return _whole_document_predictions(index, task, task_type, model, predictor_factory,
                                           refs)
    if task.level == "document":
        for ref in refs:
            items = document_predictions(index, model["id"], ref, reviewed_out=False)
            if not items:  # not tagged by this version yet: its opening chunks
                chunks = index.query("select id, page, text from chunks where document_id = ? "
                                     "order by seq limit ?", [ref, DOCUMENT_CHUNKS])
                preds = predict(predictor_factory(), [c["text"] for c in chunks])
                items = [ChunkPrediction(c["id"], c["page"], c["text"], p)
                         for c, p in zip(chunks, preds)]
            prediction = document_prediction(task, task_type, items)
            if prediction is not None:
                out[ref] = (prediction, uncertainty_of(task_type, task, prediction))
        return out
    missing = []
    for i in range(0, len(refs), 500):
        part = refs[i:i + 500]
        marks = ",".join("?" * len(part))
        stored = {r["chunk_id"]: r for r in index.query(
            f"select chunk_id, value, score, scores, uncertainty from predictions "
            f"where model_id = ? and chunk_id in ({marks})", [model["id"]] + part)}
        for ref in part:
            r = stored.get(ref)
            if r is None:
                missing.append(ref)
                continue
            prediction = stored_prediction(r)
            u = r["uncertainty"]
            out[ref] = (prediction,
                        u if u is not None else uncertainty_of(task_type, task, prediction))
    for i in range(0, len(missing), PREDICT_BATCH):
        part = missing[i:i + PREDICT_BATCH]
        marks = ",".join("?" * len(part))
        texts = {r["id"]: r["text"] for r in index.query(
            f"select id, text from chunks where id in ({marks})", part)}
        part = [ref for ref in part if ref in texts]
        for ref, p in zip(part, predict(predictor_factory(), [texts[ref] for ref in part])):
            out[ref] = (p, uncertainty_of(task_type, task, p))
    return out


def rank_by_uncertainty(scored: dict) -> list:
    """``{ref: (prediction, uncertainty)}`` as ``(ref, (prediction, uncertainty))`` pairs,
    most uncertain first (ties: lower ref first)."""
    return sorted(scored.items(), key=lambda kv: (-(kv[1][1] or 0.0), kv[0]))


def turn_group(prediction: Prediction) -> str | None:
    """The class whose turn an item takes: its predicted class when the value is one class
    (single-label classification, from any task type); None otherwise."""
    value = prediction.value
    return value if isinstance(value, str) else None


@dataclass
class Pick:
    """One item of the ``uncertain`` queue, with what its ``why`` line says."""

    item: Any  # what ``load`` returned (an Item in the product)
    ref: int
    prediction: Prediction
    uncertainty: float | None
    rank: int  # 1-based place in the plain uncertainty ranking
    of: int  # items ranked
    turn: str | None  # the predicted class whose turn it was; None when classes take no turns


def uncertain_order(scored: dict, load: Callable[[int, Prediction], Any], *,
                    turns: bool = True) -> Iterator[Pick]:
    """The order ``uncertain`` asks in, lazily. ``scored`` is ``{ref: (prediction,
    uncertainty)}``; ``load(ref, prediction)`` returns the item (anything with a ``text``),
    or None to pass over it (labelled meanwhile, gone).

    Items are ranked most uncertain first; with ``turns`` the predicted classes
    (:func:`turn_group`) then take turns, each giving its most uncertain item not asked yet,
    in the order of their most uncertain items, so no predicted class fills the queue
    (measured in docs/active_learning.md). An item without one predicted class (no answer,
    multi-label, spans) comes when it is ahead of every class item left in the plain
    ranking; so with one class, or none, the order is the plain ranking. Near-duplicates of
    an item already given are passed over (a class keeps its turn). Pure, so
    bench/active_learning runs this very function."""
    ranked = rank_by_uncertainty(scored)
    classes: dict[str, deque] = {}
    loose: deque = deque()  # items with no one predicted class
    for rank, (ref, (prediction, u)) in enumerate(ranked, 1):
        key = turn_group(prediction) if turns else None
        (loose if key is None else classes.setdefault(key, deque())).append(
            (rank, ref, prediction, u))
    taking_turns = len(classes) > 1
    groups, turn = list(classes), 0
    seen = NearDuplicates()

    def usable(entry):
        item = load(entry[1], entry[2])
        return None if item is None or seen.check_and_add(item.text) else item

    while loose or groups:
        ahead = min(classes[g][0][0] for g in groups) if groups else None
        if loose and (ahead is None or loose[0][0] < ahead):
            entry = loose.popleft()
            item = usable(entry)
            if item is not None:
                yield Pick(item, entry[1], entry[2], entry[3], entry[0], len(ranked), None)
            continue
        turn %= len(groups)
        key = groups[turn]
        queue, pick = classes[key], None
        while queue and pick is None:
            entry = queue.popleft()
            item = usable(entry)
            if item is not None:
                pick = Pick(item, entry[1], entry[2], entry[3], entry[0], len(ranked),
                            key if taking_turns else None)
        if queue:
            turn += 1
        else:
            groups.pop(turn)
        if pick is not None:
            yield pick


def why_uncertain(pick: Pick, version) -> str:
    """The ``why`` line of an ``uncertain`` item."""
    why = (f"{explain(pick.prediction, pick.uncertainty or 0.0)}; rank {pick.rank} of "
           f"{pick.of} (model v{version})")
    if pick.turn is not None:
        why += (f"; the most uncertain left of those predicted {pick.turn} "
                "(predicted classes take turns)")
    return why


def uncertain(index: Index, task: Task, task_type, model: dict, predictor_factory, *,
              pool: int = DEFAULT_POOL, seed: int | None = None,
              turns: bool = True) -> Iterator[Item]:
    """Most uncertain first, predicted classes taking turns (``turns=False``: the plain
    ranking), near-duplicates of items already shown left out."""
    refs = _sample_ids(index, task, pool, seed)
    scored = predict_items(index, task, task_type, model, predictor_factory, refs)

    def load(ref, prediction):
        return load_item(index, task, ref, prediction=prediction)

    for pick in uncertain_order(scored, load, turns=turns):
        pick.item.why = why_uncertain(pick, model["version"])
        yield pick.item


def review(index: Index, task: Task, task_type, model: dict) -> Iterator[Item]:
    """The model's predictions on unlabelled items: queued ones first, least sure next."""
    from doctagger.document_predictions import read
    from doctagger.tagging import document_predictions, stored_prediction

    params = {"task": task.id, "model": model["id"]}
    if task.level == "document":
        rows = index.query(
            "select d.id as ref, max(p.review) as queued, coalesce((select max(g.score) from "
            "document_tags g where g.document_id = d.id and g.task_id = :task and "
            "g.model_id = :model), 0) as score from documents d "
            "join chunks c on c.document_id = d.id "
            "join predictions p on p.chunk_id = c.id and p.model_id = :model "
            f"where {_unlabelled_documents()} group by d.id "
            "order by queued desc, score, d.id", params)
    else:
        rows = index.query(
            "select p.chunk_id as ref, p.review as queued, p.score from predictions p "
            f"join chunks c on c.id = p.chunk_id where p.model_id = :model and "
            f"{_unlabelled_chunks()} order by p.review desc, p.score, c.document_id, c.seq",
            params)
    whole = reads_documents(task, model)
    for r in rows:
        if task.level == "document":
            prediction = read(index, model["id"], r["ref"]) if whole else None
            prediction = prediction or document_prediction(
                task, task_type, document_predictions(index, model["id"], r["ref"],
                                                      reviewed_out=False))
        else:
            stored = index.one("select value, score, scores from predictions where "
                               "model_id = ? and chunk_id = ?", [model["id"], r["ref"]])
            prediction = stored and stored_prediction(stored)
        if prediction is None:
            continue
        why = (f"model v{model['version']} predicted this with score {float(prediction.score):.2f}"
               + ("; queued for review (under --min-score)" if r["queued"] else ""))
        item = load_item(index, task, r["ref"], why=why, prediction=prediction,
                         queued=bool(r["queued"]))
        if item is not None:
            yield item


# -- near-duplicates ---------------------------------------------------------------------
def shingles(text: str, k: int = 3) -> set[str]:
    words = re.findall(r"\w+", text.casefold())
    if len(words) <= k:
        return {" ".join(words)}
    return {" ".join(words[i:i + k]) for i in range(len(words) - k + 1)}


def jaccard(a: set, b: set) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


class NearDuplicates:
    """MinHash with banded locality-sensitive hashing: ``check_and_add(text)`` says whether
    a text is a near-duplicate (word 3-gram Jaccard >= threshold) of one added before, and
    adds it when it is not. Candidates from the buckets are confirmed with exact Jaccard."""

    def __init__(self, threshold: float = DUPLICATE_JACCARD, perms: int = 32, bands: int = 16):
        self.threshold = threshold
        self.rows = perms // bands
        self.bands = bands
        rng = random.Random(20240611)
        self.masks = [rng.getrandbits(64) for _ in range(perms)]
        self.buckets: list[dict] = [{} for _ in range(bands)]
        self.sets: list[set[str]] = []

    def signature(self, grams: set[str]) -> list[int]:
        hashes = [int.from_bytes(hashlib.blake2b(g.encode(), digest_size=8).digest(), "big")
                  for g in grams] or [0]
        return [min(h ^ m for h in hashes) for m in self.masks]

    def check_and_add(self, text: str) -> bool:
        grams = shingles(text)
        sig = self.signature(grams)
        keys = [tuple(sig[b * self.rows:(b + 1) * self.rows]) for b in range(self.bands)]
        candidates = set()
        for bucket, key in zip(self.buckets, keys):
            candidates.update(bucket.get(key, ()))
        if any(jaccard(grams, self.sets[i]) >= self.threshold for i in candidates):
            return True
        n = len(self.sets)
        self.sets.append(grams)
        for bucket, key in zip(self.buckets, keys):
            bucket.setdefault(key, []).append(n)
        return False


__all__ = ["Item", "load_item", "sequential", "random_order", "uncertain", "review",
           "explain", "predict_items", "rank_by_uncertainty", "uncertain_order", "Pick",
           "turn_group", "why_uncertain", "document_prediction", "NearDuplicates", "shingles",
           "jaccard", "DEFAULT_POOL"]
