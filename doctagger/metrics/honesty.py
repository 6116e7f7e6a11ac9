"""How far to trust a held-out score: a bootstrap interval for macro-F1 and the expected
calibration error of the probabilities.

A held-out split of 30 examples gives a macro-F1 that can move by 0.1 or more on another
draw of 30; ``train`` prints the interval next to the score so that a small split says so
itself. The calibration error says whether ``--min-score`` means what it says: among
predictions scored about 0.8, about 8 in 10 should be right.
"""
from __future__ import annotations

#: bootstrap resamples and the interval's coverage
RESAMPLES = 1000
COVERAGE = 0.95
#: equal-width confidence bins of the calibration error
BINS = 10


def _macro_f1_rows(gold, pred, n_labels: int):
    """Macro-F1 of each row of (resamples, n) index arrays, over the labels present in the
    gold or predicted values of that row (as scikit-learn's ``f1_score(average="macro")``
    over the labels given: a label absent from both counts 0 there; here it is left out,
    which is what a resample that misses a rare label should do)."""
    import numpy as np

    rows = gold.shape[0]
    offset = (np.arange(rows) * n_labels)[:, None]
    size = rows * n_labels
    tp = np.bincount((offset + gold)[gold == pred], minlength=size).reshape(rows, n_labels)
    gold_n = np.bincount((offset + gold).ravel(), minlength=size).reshape(rows, n_labels)
    pred_n = np.bincount((offset + pred).ravel(), minlength=size).reshape(rows, n_labels)
    denominator = gold_n + pred_n
    f1 = np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)
    present = (gold_n > 0) | (pred_n > 0)
    return (f1 * present).sum(axis=1) / np.maximum(present.sum(axis=1), 1)


def macro_f1_interval(gold: list[int], pred: list[int], n_labels: int, *,
                      seed: int = 0) -> list[float] | None:
    """[low, high]: the central :data:`COVERAGE` of macro-F1 over :data:`RESAMPLES`
    bootstrap resamples of the examples (label indices; a prediction outside the labels is
    -1, always wrong). None with fewer than 2 examples. When every example is right the
    bootstrap has no error to resample and would say [1, 1]; the low end is then the
    "rule of three" bound 1 - 3/n (95 %: 21 documents all right leave an error rate of up
    to 14 % plausible)."""
    import numpy as np

    n = len(gold)
    if n < 2:
        return None
    g = np.asarray(gold, dtype=int)
    p = np.asarray(pred, dtype=int)
    wrong = n_labels  # predictions outside the labels: their own, never-gold, column
    p = np.where((p < 0) | (p >= n_labels), wrong, p)
    draw = np.random.default_rng(seed).integers(0, n, size=(RESAMPLES, n))
    scores = _macro_f1_rows(g[draw], p[draw], n_labels + 1)
    tail = (1 - COVERAGE) / 2
    low, high = np.quantile(scores, [tail, 1 - tail])
    if (g == p).all():
        low = min(float(low), max(0.0, 1 - 3 / n))
    return [round(float(low), 4), round(float(high), 4)]


def calibration_error(confidence: list[float], correct: list[bool]) -> float | None:
    """Expected calibration error of the top label: the mean over :data:`BINS` equal-width
    confidence bins of |accuracy - mean confidence|, weighted by the bin's share of the
    examples. 0 is perfectly calibrated. None without examples."""
    import numpy as np

    c = np.clip(np.asarray(confidence, dtype=float), 0.0, 1.0)
    ok = np.asarray(correct, dtype=float)
    if not len(c):
        return None
    bins = np.minimum((c * BINS).astype(int), BINS - 1)
    error = 0.0
    for b in range(BINS):
        inside = bins == b
        if inside.any():
            error += inside.mean() * abs(ok[inside].mean() - c[inside].mean())
    return round(float(error), 4)
