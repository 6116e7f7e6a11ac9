"""How unsure a classification is, and the roll-up (the core's, one rule for every class
value: :func:`doctagger.rollup.rollup_classes`).
"""
from __future__ import annotations

import math

from doctagger.rollup import rollup_classes
from doctagger.tasktypes import ChunkPrediction, DocumentTag, Prediction, Task


def rollup(task: Task, items: list[ChunkPrediction]) -> list[DocumentTag]:
    return rollup_classes(task, items)


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
