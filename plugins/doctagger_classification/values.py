"""Label values of a classification task: checking, normalising, encoding.

- single-label: the value is one class name (``str``) from the task's labels;
- multi-label: a sorted, de-duplicated ``list[str]``; a single ``str`` is accepted and
  normalised to a one-element list, and ``"a|b"`` to ``["a", "b"]`` (label names can never
  contain ``|`` or ``,``). An EMPTY list is a valid multi-label value: "none of the labels
  applies". It is a real training signal (all labels negative), not a missing label.
"""
from __future__ import annotations

from typing import Any

from doctagger.errors import InvalidLabelError

SEPARATORS = ("|", ",")


def check_labels(labels: list[str], *, multi_label: bool) -> None:
    """Refuse a label set that cannot work, with a message that says what to do."""
    if not labels:
        raise InvalidLabelError("give at least one label with --labels A,B,C")
    for label in labels:
        if not isinstance(label, str) or not label.strip():
            raise InvalidLabelError("label names must be non-empty text: check --labels")
        if label != label.strip():
            raise InvalidLabelError(f"label {label!r} has spaces around it: remove them")
        bad = [s for s in SEPARATORS if s in label]
        if bad:
            raise InvalidLabelError(
                f"label {label!r} contains {bad[0]!r}, which separates labels in files: rename it")
    seen: set[str] = set()
    for label in labels:
        if label in seen:
            raise InvalidLabelError(f"label {label!r} is given twice: list each label once")
        seen.add(label)
    if not multi_label and len(labels) < 2:
        raise InvalidLabelError(
            "a single-label classification task needs at least 2 labels "
            "(for yes/no on one label use two labels, e.g. --labels relevant,other, "
            "or --multi-label)")


def _unknown(task, label: str) -> InvalidLabelError:
    return InvalidLabelError(
        f"unknown label {label!r} for task '{task.name}': use one of {', '.join(task.labels)}")


def normalise(task, value: Any) -> Any:
    """The value in doctagger's convention, or InvalidLabelError saying what is wrong."""
    if task.multi_label:
        if value is None:
            raise InvalidLabelError(
                f"task '{task.name}' is multi-label: give a list of labels ([] for none of them)")
        if isinstance(value, str):
            value = [v.strip() for v in value.split("|")] if value.strip() else []
        if not isinstance(value, (list, tuple, set)):
            raise InvalidLabelError(
                f"task '{task.name}' is multi-label: give a list of labels, not {value!r}")
        out = set()
        for item in value:
            if not isinstance(item, str):
                raise InvalidLabelError(f"labels are text, not {item!r}")
            if item not in task.labels:
                raise _unknown(task, item)
            out.add(item)
        return sorted(out)
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    if isinstance(value, (list, tuple)):
        raise InvalidLabelError(
            f"task '{task.name}' is single-label: give one label, not {len(value)}")
    if not isinstance(value, str):
        raise InvalidLabelError(f"task '{task.name}' needs a label name, not {value!r}")
    if value not in task.labels:
        raise _unknown(task, value)
    return value


def encode(task, values: list[Any]):
    """Single-label: a list of class ids. Multi-label: a list of 0/1 float vectors."""
    index = {label: i for i, label in enumerate(task.labels)}
    if task.multi_label:
        out = []
        for value in values:
            row = [0.0] * len(task.labels)
            for label in value:
                row[index[label]] = 1.0
            out.append(row)
        return out
    return [index[v] for v in values]


def honesty(gold: list, pred: list, confidence: list[float], labels: list[str]) -> dict:
    """Single-label: how far to trust a macro-F1 measured on these examples
    (``macro_f1_interval``, a 95 % bootstrap interval) and how honest the scores are
    (``calibration_error``, the expected calibration error of the predicted label's
    score: what ``--min-score`` compares)."""
    from doctagger.metrics.honesty import calibration_error, macro_f1_interval

    index = {str(label): i for i, label in enumerate(labels)}
    g = [index.get(str(v), -1) for v in gold]
    p = [index.get(str(v), -1) for v in pred]
    known = [i for i, v in enumerate(g) if v >= 0]
    out = {"macro_f1_interval": macro_f1_interval([g[i] for i in known], [p[i] for i in known],
                                                  len(labels)),
           "calibration_error": calibration_error([confidence[i] for i in known],
                                                  [g[i] == p[i] for i in known])}
    return {k: v for k, v in out.items() if v is not None}
