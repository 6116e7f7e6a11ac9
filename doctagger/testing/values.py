"""Checks of single values: JSON-safe, a probability, a bad label value to refuse, and the
:class:`~doctagger.tasktypes.Prediction` objects a predictor returns."""
from __future__ import annotations

import json
import math

from doctagger.errors import InvalidLabelError
from doctagger.predictions import is_score, label_value, value_problem
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


def _prediction_problems(tt, task: Task, text: str, prediction) -> list[tuple[str, str]]:
    """Every broken promise of one prediction, as (kind, sentence) pairs; the sentences do
    not name the step. What ``tag`` refuses (:func:`doctagger.predictions.prediction_problem`)
    is among them, so a type that passes the check passes ``tag``'s."""
    if not isinstance(prediction, Prediction):
        return [("type", f"returned {type(prediction).__name__}; return "
                         "doctagger.tasktypes.Prediction objects")]
    out = []
    value = prediction.value
    if not is_score(prediction.score):
        out.append(("score", f"score {prediction.score!r} is not a number from 0 to 1"))
    spans = getattr(tt, "value_kind", "class") == "spans" and isinstance(value, list)
    if value is None:
        # "no answer" (a rule that matched nothing): allowed, with score 0
        if is_score(prediction.score) and float(prediction.score) != 0.0:
            out.append(("none", "value None (no answer) must come with score 0"))
    else:
        kind = "refused"
        try:
            tt.validate(task, label_value(tt, value))
        except InvalidLabelError:
            problem = value_problem(tt, task, value)  # says what validate() said
        except Exception as exc:
            problem = f"returned {value!r}, on which validate() raised {_describe(exc)}"
        else:
            kind, problem = "normalised", value_problem(tt, task, value)
        if problem:
            out.append((kind, f"predict() {problem}"))
        if spans:
            for span in value:
                if isinstance(span, dict) and not (
                        0 <= span.get("start", -1) < span.get("end", -1) <= len(text)):
                    out.append(("outside", f"span {span!r} lies outside its text "
                                           f"(length {len(text)})"))
                    break
            odd = [s["score"] for s in value
                   if isinstance(s, dict) and "score" in s and not is_score(s["score"])]
            if odd:
                out.append(("span score", f"a span's score {odd[0]!r} is not a number from "
                                          "0 to 1"))
    if prediction.scores is not None:
        if not isinstance(prediction.scores, dict):
            out.append(("scores", "scores must be a dict {label: probability} or None"))
        else:
            odd = [k for k, v in prediction.scores.items()
                   if k not in task.labels or not _is_unit_float(v)]
            if odd:
                out.append(("scores", f"scores has keys that are not labels or values "
                                      f"outside 0..1: {odd[:3]}"))
    if not _json_ok(value):
        out.append(("json", "the predicted value is not JSON-serialisable"))
    return out


def _check_predictions(check: _Checker, tt, task: Task, texts: list[str], predictions,
                       where: str) -> None:
    """Check one Prediction per text; a broken promise is said once, with how many texts it
    concerned ("(8 of 8 texts)"). A prediction that is not a Prediction stops the check."""
    found: dict[str, list[str]] = {}
    for text, prediction in zip(texts, predictions):
        for kind, message in _prediction_problems(tt, task, text, prediction):
            found.setdefault(kind, []).append(message)
    for kind, messages in found.items():
        count = ""
        if len(texts) > 1:
            count = f" ({len(messages)} of {len(texts)} texts" + (
                ")" if len(set(messages)) == 1 else "; the first is shown)")
        check.problem(f"{where}: {messages[0]}{count}")
    if "type" in found:
        raise _Stop
