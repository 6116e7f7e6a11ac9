"""Checks of single values: JSON-safe, a probability, a bad label value to refuse, and one
:class:`~doctagger.tasktypes.Prediction` as a task type returns it."""
from __future__ import annotations

import json
import math

from doctagger.tasktypes import Prediction, Task

from .checker import _Checker, _describe, _Stop

BAD_LABEL = "no-such-label-zz"


def _json_ok(value) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _is_unit_float(x) -> bool:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return False
    return math.isfinite(x) and 0.0 <= x <= 1.0


def _bad_values(value_kind: str, labels: list[str], multi_label: bool) -> list:
    if value_kind == "spans":
        return [
            [{"start": 3, "end": 1, "label": labels[0]}],  # end before start
            [{"start": 0, "end": 2, "label": BAD_LABEL}],  # unknown label
            [{"start": 0, "label": labels[0]}],  # no end
            "not a list of spans",
        ]
    bad: list = [BAD_LABEL, 42]
    if multi_label:
        bad.append([labels[0], BAD_LABEL])
    return bad


def _check_prediction(check: _Checker, tt, task: Task, text: str, prediction, where: str):
    if not isinstance(prediction, Prediction):
        check.problem(f"{where}: returned {type(prediction).__name__}; return "
                      "doctagger.tasktypes.Prediction objects")
        raise _Stop
    if not _is_unit_float(prediction.score):
        check.problem(f"{where}: score {prediction.score!r} is not a number from 0 to 1")
    if prediction.value is None:
        # "no answer" (a rule that matched nothing): allowed, with score 0
        if float(prediction.score or 0) != 0.0:
            check.problem(f"{where}: value None (no answer) must come with score 0")
    else:
        try:
            tt.validate(task, prediction.value)
        except Exception as exc:
            check.problem(f"{where}: predicted {prediction.value!r}, which validate() "
                          f"refuses: {_describe(exc)}")
        if getattr(tt, "value_kind", "class") == "spans" and isinstance(prediction.value, list):
            for span in prediction.value:
                if isinstance(span, dict) and not (
                        0 <= span.get("start", -1) < span.get("end", -1) <= len(text)):
                    check.problem(f"{where}: span {span!r} lies outside its text "
                                  f"(length {len(text)})")
                    break
    if prediction.scores is not None:
        if not isinstance(prediction.scores, dict):
            check.problem(f"{where}: scores must be a dict {{label: probability}} or None")
        else:
            odd = [k for k, v in prediction.scores.items()
                   if k not in task.labels or not _is_unit_float(v)]
            if odd:
                check.problem(f"{where}: scores has keys that are not labels or values "
                              f"outside 0..1: {odd[:3]}")
    if not _json_ok(prediction.value):
        check.problem(f"{where}: the predicted value is not JSON-serialisable")
