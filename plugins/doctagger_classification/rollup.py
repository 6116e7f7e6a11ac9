"""From chunk predictions to document tags, and how unsure a prediction is.

- chunk-level task: a document carries each label that some chunk has; score = the best
  such chunk's probability of it; support = the (up to) 3 best such chunks;
- document-level task: the mean of the chunk probabilities (the same aggregate the
  held-out evaluation uses); single-label: the argmax label; multi-label: every label whose
  mean reaches its threshold; support = the 3 chunks with the highest probability of it.

Per-label probabilities come from ``Prediction.scores``. A prediction read back from the
index may only have ``value`` and ``score``: then single-label uses ``score`` for its label
and shares ``1 - score`` among the others, and multi-label counts a chunk's vote (1 for a
label it has, 0 otherwise), so a document gets a label most of its chunks have. Multi-label
thresholds come from the prediction when the predictor attached them (``thresholds``), else
0.5.
"""
from __future__ import annotations

import math
from collections import defaultdict

from doctagger.tasktypes import ChunkPrediction, DocumentTag, Prediction, Task

TOP = 3


def probabilities(task: Task, prediction: Prediction, labels: list[str]) -> dict[str, float]:
    if prediction.scores:
        return {label: float(prediction.scores.get(label, 0.0)) for label in labels}
    value = prediction.value
    if task.multi_label:
        chosen = set(value or [])
        return {label: 1.0 if label in chosen else 0.0 for label in labels}
    score = float(prediction.score)
    rest = (1.0 - score) / max(1, len(labels) - 1)
    return {label: score if label == value else rest for label in labels}


def _labels(task: Task, items: list[ChunkPrediction]) -> list[str]:
    labels = list(task.labels)
    for item in items:
        for label in (item.prediction.scores or {}):
            if label not in labels:
                labels.append(label)
    return labels


def rollup(task: Task, items: list[ChunkPrediction]) -> list[DocumentTag]:
    if not items:
        return []
    labels = _labels(task, items)
    if task.level != "document":
        found: dict[str, list[tuple[float, int]]] = defaultdict(list)
        for item in items:
            value = item.prediction.value
            chosen = value if isinstance(value, list) else [value]
            probs = probabilities(task, item.prediction, labels)
            for label in chosen:
                if label is not None:
                    found[label].append((probs.get(label, float(item.prediction.score)),
                                         item.chunk_id))
        tags = []
        for label, support in found.items():
            support.sort(key=lambda s: (-s[0], s[1]))
            tags.append(DocumentTag(label=label, score=support[0][0],
                                    chunk_ids=[c for _, c in support[:TOP]],
                                    extra={"chunks_with_label": len(support)}))
        return sorted(tags, key=lambda t: (-t.score, t.label))
    n = len(items)
    table = [(item.chunk_id, probabilities(task, item.prediction, labels)) for item in items]
    mean = {label: sum(p[label] for _, p in table) / n for label in labels}

    def support(label):
        ranked = sorted(table, key=lambda row: (-row[1][label], row[0]))
        return [chunk for chunk, _ in ranked[:TOP]]

    extra = {"aggregate": "mean of chunk probabilities", "chunks": n}
    if task.multi_label:
        thresholds = _thresholds(items, labels)
        tags = [DocumentTag(label=label, score=mean[label], chunk_ids=support(label),
                            extra=dict(extra, threshold=thresholds[label]))
                for label in labels if mean[label] >= thresholds[label]]
        return sorted(tags, key=lambda t: (-t.score, t.label))
    best = max(labels, key=lambda label: (mean[label], -labels.index(label)))
    return [DocumentTag(label=best, score=mean[best], chunk_ids=support(best), extra=extra)]


def _thresholds(items: list[ChunkPrediction], labels: list[str]) -> dict[str, float]:
    for item in items:
        found = getattr(item.prediction, "thresholds", None)
        if found:
            return {label: float(found.get(label, 0.5)) for label in labels}
    return {label: 0.5 for label in labels}


def uncertainty(task: Task, prediction: Prediction) -> float:
    """Higher = ask a person sooner, in [0, 1].

    single-label: the normalised entropy of the label probabilities (1 when they are all
    equal, 0 for a certain answer); it picked better training items than the margin between
    the two most probable labels on the medical abstracts (docs/active_learning.md).
    multi-label: how close the least clear label is to its threshold (1 at the threshold,
    0 at a certain yes or no). Without per-label scores: 1 - score."""
    scores = prediction.scores
    if not scores:
        return 1.0 - float(prediction.score)
    if task.multi_label:
        thresholds = getattr(prediction, "thresholds", None) or {}
        worst = 0.0
        for label, p in scores.items():
            t = float(thresholds.get(label, 0.5))
            distance = (p - t) / (1 - t) if p >= t else (t - p) / t
            worst = max(worst, 1.0 - min(1.0, distance))
        return worst
    top = sorted(scores.values(), reverse=True)
    if len(top) < 2:
        return 1.0 - float(top[0]) if top else 1.0
    return min(1.0, entropy(prediction))  # scores that do not sum to 1 (rolled up): capped


def entropy(prediction: Prediction) -> float:
    """Normalised entropy of the label distribution (0 = certain, 1 = uniform)."""
    probs = [p for p in (prediction.scores or {}).values() if p > 0]
    if len(probs) < 2:
        return 0.0
    return -sum(p * math.log(p) for p in probs) / math.log(len(prediction.scores))
