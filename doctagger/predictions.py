"""Calling a task type's predictor, and checking what it returns before anything is
stored: one prediction per text, each an object with ``value`` and ``score``, the score a
finite number from 0 to 1, the value ``None`` ("no answer") or already in the task type's
normalised form (what its ``validate`` gives). A broken promise is a PluginError that names
the task type and its plugin. ``tag`` checks every prediction; the conformance kit
(:mod:`doctagger.testing`) uses the same checks, so a task type that passes it passes
``tag``."""
from __future__ import annotations

import contextlib
import json
from typing import Any

from doctagger.errors import InvalidLabelError, PluginError
from doctagger.tasktypes import Prediction, Task


def predict(predictor, texts: list[str], *, task_type=None,
            task: Task | None = None) -> list[Prediction]:
    """``predictor.predict(texts)`` under ``torch.inference_mode``, checked: one prediction
    per text and, given ``task_type`` and ``task``, each one as :func:`prediction_problem`
    wants it. A broken promise raises PluginError naming the task type."""
    if not texts:
        return []
    try:
        import torch
        mode = torch.inference_mode()
    except ImportError:  # pragma: no cover - torch is a dependency
        mode = contextlib.nullcontext()
    with mode:
        got = predictor.predict(list(texts))
    try:
        out = list(got)
    except TypeError:  # None, a single Prediction, ...
        what = "None" if got is None else type(got).__name__
        out, problem = None, f"returned {what}, not a list of predictions"
    else:
        problem = None if len(out) == len(texts) else (
            f"returned {len(out)} predictions for {len(texts)} texts")
    if problem is None and task_type is not None and task is not None:
        for text, prediction in zip(texts, out):
            problem = prediction_problem(task_type, task, prediction, text)
            if problem:
                break
    if problem:
        raise PluginError(f"{predictor_of(task)} {problem}; report this to the plugin's "
                          "authors")
    return out


def predictor_of(task: Task | None) -> str:
    """'the predictor of task type 'x' (from dist)', for messages that blame a plugin."""
    if task is None:
        return "the task type's predictor"
    from doctagger import plugins

    st = plugins.state()
    owner = st.task_type_owner.get(task.type)
    dist = st.dists.get(owner, (None, ""))[0] if owner else None
    source = f" (from {dist})" if dist else f" (plugin '{owner}')" if owner else ""
    return f"the predictor of task type '{task.type}'{source}"


def _short(value: Any, width: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def _one_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0]


_MISSING = object()


def is_score(x: Any) -> bool:
    """A finite number from 0 to 1 (not a str or a bool)."""
    if type(x) is not float and type(x) is not int:
        if isinstance(x, (str, bytes, bool)):
            return False
        try:
            x = float(x)
        except Exception:  # not a number, or a tensor of several
            return False
    return 0.0 <= x <= 1.0  # NaN fails both comparisons; inf fails one


def label_value(task_type, value: Any) -> Any:
    """A predicted value without what is not part of the label value: the ``"score"`` a
    predicted span may carry (``rollup_spans`` reads it; ``validate`` knows nothing of it)."""
    if getattr(task_type, "value_kind", "class") == "spans" and isinstance(value, list):
        return [{k: v for k, v in s.items() if k != "score"}
                if isinstance(s, dict) and "score" in s else s for s in value]
    return value


def value_problem(task_type, task: Task, value: Any) -> str | None:
    """Why a predicted ``value`` cannot be stored, in one clause starting "returned ...";
    None when it can: None ("no answer", single-label only: a multi-label "none" is [],
    and so is "no entities"), or a value ``task_type.validate`` accepts and leaves as it is
    (already normalised: a sorted list for multi-label, ...)."""
    spans = getattr(task_type, "value_kind", "class") == "spans"
    if value is None:
        if spans or task.multi_label:
            return ("returned None; " + ("return [] for a text with no entities" if spans
                                         else "return [] when none of the labels applies")
                    + " (None, 'no answer', is for single-label tasks)")
        return None
    core = label_value(task_type, value)
    try:
        normal = task_type.validate(task, core)
    except InvalidLabelError as exc:
        return f"returned {_short(value)}, which validate() refuses ({_one_line(exc)})"
    except Exception as exc:
        return (f"returned {_short(value)}, on which validate() raised "
                f"{type(exc).__name__}: {_one_line(exc)}")
    try:
        same = bool(normal == core)
    except Exception:  # an array, or something else that will not compare
        same = False
    if same:
        return None
    kind = ("spans" if getattr(task_type, "value_kind", "class") == "spans" else
            "multi-label" if task.multi_label else "single-label")
    return (f"returned {_short(value)} for a {kind} task; return the normalised value "
            f"{_short(normal)} (what validate() gives)")


def prediction_problem(task_type, task: Task, prediction: Any,
                       text: str | None = None) -> str | None:
    """What ``tag`` refuses to store, in one clause starting "returned ..."; None when the
    prediction is fine: an object with ``value`` and ``score``, the score a finite number
    from 0 to 1 (as are a span's own ``"score"`` and every per-label ``scores`` value,
    whose keys are the task's labels), spans inside ``text`` when it is given, the value as
    :func:`value_problem` wants it. Cheap: one ``validate`` call."""
    value = getattr(prediction, "value", _MISSING)
    score = getattr(prediction, "score", _MISSING)
    if value is _MISSING or score is _MISSING:
        return (f"returned {type(prediction).__name__} {_short(prediction, 60)}, not a "
                "Prediction (an object with value and score)")
    if not is_score(score):
        return (f"returned score {_short(score)} (for {_short(value, 60)}); a score is a "
                "number from 0 to 1")
    scores = getattr(prediction, "scores", None)
    if scores is not None:
        if not isinstance(scores, dict):
            return (f"returned scores {_short(scores, 60)}; scores is a dict of label -> "
                    "probability, or None")
        for label, p in scores.items():
            if label not in task.labels:
                return (f"returned scores for {_short(label)}, which is not a label of task "
                        f"'{task.name}'")
            if not is_score(p):
                return (f"returned the score {_short(p)} for {_short(label)} in scores; a "
                        "score is a number from 0 to 1")
    if isinstance(value, list) and getattr(task_type, "value_kind", "class") == "spans":
        for span in value:
            if isinstance(span, dict) and "score" in span and not is_score(span["score"]):
                return (f"returned a span with score {_short(span['score'])}; a score is a "
                        "number from 0 to 1")
            end = span.get("end") if isinstance(span, dict) else None
            if text is not None and isinstance(end, int) and end > len(text):
                return (f"returned the span {_short(span, 60)}, which ends past the end of "
                        f"its text ({len(text)} characters)")
    return value_problem(task_type, task, value)


def stored_prediction(row: dict) -> Prediction:
    """A Prediction from a ``predictions`` row (value, score, scores)."""
    scores = row.get("scores")
    return Prediction(json.loads(row["value"]), row["score"],
                      json.loads(scores) if scores else None)
