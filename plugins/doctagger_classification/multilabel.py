"""Multi-label decisions: one sigmoid per label, with a threshold per label tuned on
training data, never on the held-out split its scores are reported on.

Rule: for each label, try every threshold on a grid from 0.05 to 0.95 and keep the one with
the best F1 of that label on the tuning examples; a tie goes to the threshold nearest 0.5.
A label with no positive tuning example (or whose column is NaN: it could not be
cross-validated) keeps 0.5. The tuning examples (methods.py): for the head, out-of-fold
predictions of the training split (cross-validation); for fine-tuning, a slice of the
training split held back from the Trainer. Thresholds tuned on the held-out split made its
scores optimistic (QA: macro recall 1.000 with a subset accuracy of 0.278).
"""
from __future__ import annotations

import json
from pathlib import Path

DEFAULT = 0.5
GRID = [round(0.05 * i, 2) for i in range(1, 20)]
FILE = "thresholds.json"


def tune_thresholds(probs, gold) -> list[float]:
    """probs, gold: arrays of shape (n, labels); gold holds 0/1. Returns one threshold a label."""
    import numpy as np

    probs = np.asarray(probs, dtype=float)
    gold = np.asarray(gold, dtype=float) > 0.5
    if probs.ndim != 2 or len(probs) == 0:
        return [DEFAULT] * (probs.shape[1] if probs.ndim == 2 else 0)
    out = []
    for j in range(probs.shape[1]):
        positives = gold[:, j]
        if not positives.any() or np.isnan(probs[:, j]).any():
            out.append(DEFAULT)
            continue
        best, best_t = -1.0, DEFAULT
        for t in sorted(GRID, key=lambda t: abs(t - DEFAULT)):
            chosen = probs[:, j] >= t
            tp = float((chosen & positives).sum())
            f1 = 2 * tp / (chosen.sum() + positives.sum())
            if f1 > best + 1e-12:
                best, best_t = f1, t
        out.append(best_t)
    return out


def decide(probs_row, labels: list[str], thresholds: list[float]) -> list[str]:
    """The sorted labels whose probability reaches their threshold."""
    return sorted(label for label, p, t in zip(labels, probs_row, thresholds) if p >= t)


def confidence(probs_row, thresholds: list[float]) -> float:
    """How sure a multi-label decision is: the least sure of its per-label yes/no answers
    (p for a yes, 1 - p for a no)."""
    sure = [float(p) if p >= t else 1.0 - float(p) for p, t in zip(probs_row, thresholds)]
    return min(sure) if sure else 1.0


#: how the thresholds of a model were chosen (the "rule" of thresholds.json), by where
RULES = {
    "out-of-fold": "per-label F1 on out-of-fold (cross-validated) predictions of the training "
                   "split, grid 0.05..0.95; 0.5 without data; the held-out split is not used",
    "tuning-slice": "per-label F1 on a slice of the training split held back from "
                    "fine-tuning, grid 0.05..0.95; 0.5 without data; the held-out split is "
                    "not used",
    "default": "0.5 for every label: too little training data to tune them on",
}


def save(model_dir: Path, labels: list[str], thresholds: list[float],
         tuned_on: str = "default") -> None:
    """Write thresholds.json (``{"thresholds": {label: t}, "rule": ...}``) and the
    ``doctagger_thresholds`` key of config.json. ``tuned_on``: a key of :data:`RULES`."""
    data = {"thresholds": dict(zip(labels, [float(t) for t in thresholds])),
            "rule": RULES[tuned_on]}
    (Path(model_dir) / FILE).write_text(json.dumps(data, indent=2) + "\n")
    config = Path(model_dir) / "config.json"
    if config.exists():  # also in the HF config, as a custom key other tools can read
        cfg = json.loads(config.read_text())
        cfg["doctagger_thresholds"] = data["thresholds"]
        config.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def load(model_dir: Path, labels: list[str]) -> list[float]:
    path = Path(model_dir) / FILE
    if not path.exists():
        return [DEFAULT] * len(labels)
    data = json.loads(path.read_text())["thresholds"]
    return [float(data.get(label, DEFAULT)) for label in labels]
