"""The conformance check: :func:`check_task_type` drives a task type through everything
the core does with it (check_labels → validate → train → save → load → predict → evaluate
→ roll-up → uncertainty → render) and reports every step that broke."""
from __future__ import annotations

import dataclasses
import math
import os
import shutil
from pathlib import Path
from typing import Any, Sequence

from doctagger.errors import InvalidLabelError
from doctagger.tasktypes import ChunkPrediction, DocumentTag, Example, Task, TrainOptions

from .checker import _Checker, _describe, _Stop
from .examples import sample_examples
from .report import ConformanceReport
from .values import _bad_values, _check_predictions, _is_unit_float, _json_ok

#: methods whose absence leaves nothing to check after the interface step
_ESSENTIAL = ("check_labels", "validate", "load", "train")


def check_task_type(task_type, *, labels: Sequence[str], tmp_path: str | os.PathLike,
                    examples: Sequence[Example] | None = None, level: str = "chunk",
                    multi_label: bool = False, train_options: TrainOptions | None = None,
                    task_options: dict | None = None,
                    bad_values: Sequence[Any] | None = None) -> ConformanceReport:
    """Drive ``task_type`` (a class, an instance or a registered name) through everything
    the core does with a task type, and report what broke.

    ``examples`` default to :func:`sample_examples`; every fourth one is held out for
    evaluation. ``train_options`` are handed to ``train`` (give ``base_model`` a
    :func:`tiny_bert` folder for a transformer); ``task_options`` become ``Task.options``
    (e.g. a rule-based type's rules); ``bad_values`` replace the label values that
    ``validate`` must refuse with InvalidLabelError. Training is skipped for a type with
    ``needs_training = False``: it is loaded from an empty model folder, as ``tag`` does."""
    if isinstance(task_type, str):
        from doctagger.plugins import get_task_type

        task_type = get_task_type(task_type)
    elif isinstance(task_type, type):
        task_type = task_type()
    name = getattr(task_type, "name", None) or type(task_type).__name__
    report = ConformanceReport(task_type=str(name))
    check = _Checker(report)
    labels = list(labels)
    tmp_path = Path(tmp_path)
    state: dict[str, Any] = {}
    try:
        _check_all(check, task_type, state, labels=labels, tmp_path=tmp_path,
                   examples=examples, level=level, multi_label=multi_label,
                   train_options=train_options, task_options=task_options,
                   bad_values=bad_values)
    except _Stop:
        done = {s.name for s in report.steps}
        for later in ("check_labels", "validate", "train", "save", "load", "predict",
                      "evaluate", "rollup", "uncertainty", "render"):
            if later not in done:
                check.skip(later, "not run: an earlier step failed")
    return report


def _check_all(check: _Checker, tt, state, *, labels, tmp_path, examples, level,
               multi_label, train_options, task_options, bad_values) -> None:
    value_kind = getattr(tt, "value_kind", None)
    needs_training = getattr(tt, "needs_training", True)

    def interface():
        if not isinstance(getattr(tt, "name", None), str) or not tt.name:
            check.problem("interface: the task type has no 'name' (a non-empty str)")
        if value_kind not in ("class", "spans"):
            check.problem(f"interface: value_kind is {value_kind!r}; use 'class' or 'spans'")
        levels = tuple(getattr(tt, "levels", ("chunk", "document")))
        if level not in levels:
            check.problem(f"interface: levels {levels} does not include '{level}', which "
                          "this check was asked to test; pass level= one of them")
        if not isinstance(needs_training, bool):
            check.problem("interface: needs_training must be True or False")
        wanted = ["check_labels", "validate", "load", "evaluate", "rollup", "uncertainty",
                  "render"] + (["train"] if needs_training else [])
        for method in wanted:
            if not callable(getattr(tt, method, None)):
                check.problem(f"interface: no method {method}()")
                missing.add(method)
        return f"value_kind={value_kind}, needs_training={needs_training}"

    missing: set[str] = set()  # said once, under interface: their steps are skipped
    check.run("interface", interface, fatal=True)
    if missing & set(_ESSENTIAL):
        raise _Stop

    def run(name, fn):
        """A step that calls the task type's method ``name``, unless it has none."""
        if name in missing:
            check.skip(name, f"no method {name}() (see interface)")
        else:
            check.run(name, fn)

    task = Task(name="conformance", type=str(getattr(tt, "name", "")), labels=labels,
                multi_label=multi_label, level=level, options=dict(task_options or {}), id=1)
    examples = list(examples) if examples is not None else sample_examples(
        labels, value_kind=value_kind, multi_label=multi_label, level=level)
    if not examples:
        raise ValueError("check_task_type needs at least one example")

    def check_labels():
        tt.check_labels(labels, multi_label=multi_label, level=level)
        try:
            tt.check_labels([], multi_label=multi_label, level=level)
        except InvalidLabelError:
            pass
        except Exception as exc:
            check.problem(f"check_labels: an empty label set raised {_describe(exc)} "
                          "instead of InvalidLabelError")
        else:
            check.problem("check_labels: accepted an empty label set; raise InvalidLabelError")

    check.run("check_labels", check_labels, fatal=True)

    def validate():
        normalised = []
        for n, example in enumerate(examples):
            try:
                value = tt.validate(task, example.value)
            except Exception as exc:
                check.problem(f"validate: refused example {n} ({example.value!r}): "
                              f"{_describe(exc)}")
                raise _Stop from None
            if not _json_ok(value):
                check.problem(f"validate: returned {value!r}, which is not JSON-serialisable "
                              "(the index stores values as JSON)")
            elif tt.validate(task, value) != value:
                check.problem(f"validate: not idempotent: {value!r} became "
                              f"{tt.validate(task, value)!r} when validated again")
            normalised.append(value)
        state["examples"] = [Example(**{**e.__dict__, "value": v})
                             for e, v in zip(examples, normalised)]
        for bad in (bad_values if bad_values is not None else
                    _bad_values(value_kind, labels, multi_label)):
            try:
                tt.validate(task, bad)
            except InvalidLabelError:
                continue
            except Exception as exc:
                check.problem(f"validate: {bad!r} raised {_describe(exc)} instead of "
                              "InvalidLabelError (anything else reaches the user as a crash)")
            else:
                check.problem(f"validate: accepted the bad value {bad!r}; raise "
                              "InvalidLabelError saying what is wrong")
        return f"{len(examples)} values, bad values refused"

    check.run("validate", validate)
    if "examples" not in state:
        raise _Stop
    examples = state["examples"]
    held_ids = [n for n in range(len(examples)) if n % 4 == 3] or [len(examples) - 1]
    held = [examples[n] for n in held_ids]
    train_set = [e for n, e in enumerate(examples) if n not in held_ids] or examples
    models = tmp_path / "conformance-models"
    shutil.rmtree(models, ignore_errors=True)
    output_dir = models / "tmp-v1"
    output_dir.mkdir(parents=True)

    def train():
        options = train_options or TrainOptions()
        if options.progress is None:  # a task type may report progress; collect it quietly
            options = dataclasses.replace(options, progress=[].append)
        result = tt.train(task, list(train_set), list(held), options, output_dir)
        metrics = getattr(result, "metrics", None)
        if not isinstance(metrics, dict):
            check.problem(f"train: returned {type(result).__name__}; return a TrainResult "
                          "whose metrics is a dict")
        elif not _json_ok(metrics) or not _json_ok(getattr(result, "info", {})):
            check.problem("train: metrics or info are not JSON-serialisable (the registry "
                          "writes them to doctagger.json)")
        if not any(output_dir.iterdir()):
            check.problem(f"train: wrote nothing into the model folder {output_dir}")
        return f"{len(train_set)} train / {len(held)} held out"

    if needs_training:
        check.run("train", train, fatal=True)
    else:
        check.skip("train", "needs_training = False: loaded from an empty model folder")

    final_dir = models / "v1"

    def save():
        os.rename(output_dir, final_dir)  # what the registry does with a finished version
        stale = []
        for file in final_dir.rglob("*"):
            if file.is_file() and file.suffix in (".json", ".txt", ".md", ".yaml", ".cfg") \
                    and file.stat().st_size < 2_000_000:
                if str(output_dir) in file.read_text(encoding="utf-8", errors="replace"):
                    stale.append(file.name)
        if stale:
            check.problem(f"save: {', '.join(stale)} refer to the training folder by its "
                          "absolute path; the registry moves the folder, so store paths "
                          "relative to it")
        return f"{sum(1 for f in final_dir.rglob('*') if f.is_file())} files, moved"

    check.run("save", save, fatal=True)

    def load():
        predictor = tt.load(task, final_dir)
        if not callable(getattr(predictor, "predict", None)):
            check.problem(f"load: returned {type(predictor).__name__}, which has no "
                          "predict(texts) method")
            raise _Stop
        state["predictor"] = predictor
        return type(predictor).__name__

    check.run("load", load, fatal=True)

    texts = [e.text for e in examples]
    long_text = " ".join(texts * max(1, 3000 // max(1, sum(len(t.split()) for t in texts))))

    def predict():
        predictor = state["predictor"]
        got = _as_list(check, predictor.predict(list(texts)))
        if got is None:
            raise _Stop
        if len(got) != len(texts):
            check.problem(f"predict: returned {len(got)} predictions for {len(texts)} texts; "
                          "return a list with one Prediction per text, in order")
            raise _Stop
        _check_predictions(check, tt, task, texts, got, "predict")
        state["predictions"] = got
        empty = predictor.predict([])
        if empty is None or list(empty) != []:
            check.problem(f"predict: an empty batch returned {empty!r}; return []")
        single = _as_list(check, predictor.predict([texts[0]])) or []
        if len(single) != 1:
            check.problem(f"predict: one text gave {len(single)} predictions; return one")
        elif single[0].value != got[0].value or _differ(single[0].score, got[0].score):
            check.problem("predict: the first text alone gets a different prediction than in "
                          f"a batch ({single[0].value!r}, {_num(single[0].score)} vs "
                          f"{got[0].value!r}, {_num(got[0].score)}); padding or batch "
                          "order leaks into the result")
        long = _as_list(check, predictor.predict([long_text])) or []
        if len(long) != 1:
            check.problem("predict: a long text did not give exactly one prediction")
        else:
            _check_predictions(check, tt, task, [long_text], long, "predict (long text)")
        return f"{len(texts)} texts, an empty batch and a {len(long_text.split())}-word text"

    check.run("predict", predict)
    if "predictions" not in state:
        raise _Stop
    predictions = state["predictions"]

    def evaluate():
        metrics = tt.evaluate(task, held, [predictions[n] for n in held_ids])
        if not isinstance(metrics, dict):
            check.problem(f"evaluate: returned {type(metrics).__name__}; return a dict")
        elif not _json_ok(metrics):
            check.problem("evaluate: the metrics are not JSON-serialisable")
        return ", ".join(sorted(metrics)[:6]) if isinstance(metrics, dict) else ""

    run("evaluate", evaluate)

    def rollup():
        items = [ChunkPrediction(chunk_id=1000 + n, page=1 + n // 2, text=t, prediction=p)
                 for n, (t, p) in enumerate(zip(texts, predictions))]
        ids = {item.chunk_id for item in items}
        tags = tt.rollup(task, items)
        if not isinstance(tags, list):
            check.problem(f"rollup: returned {type(tags).__name__}; return a list of "
                          "DocumentTag")
            return ""
        for tag in tags:
            if not isinstance(tag, DocumentTag):
                check.problem(f"rollup: returned {tag!r}; return DocumentTag objects")
                continue
            if tag.label not in labels:
                check.problem(f"rollup: tag label {tag.label!r} is not one of the task's "
                              "labels")
            if not _is_unit_float(tag.score):
                check.problem(f"rollup: tag {tag.label!r} has score {tag.score!r}; use a "
                              "number from 0 to 1")
            stray = [c for c in tag.chunk_ids if c not in ids]
            if stray:
                check.problem(f"rollup: tag {tag.label!r} cites chunks {stray} that were not "
                              "among the document's chunks")
            if not _json_ok(tag.extra) or not _json_ok(list(tag.chunk_ids)):
                check.problem(f"rollup: tag {tag.label!r} has extra or chunk_ids that are "
                              "not JSON-serialisable")
        nothing = tt.rollup(task, [])
        if list(nothing) != []:
            check.problem(f"rollup: a document with no chunks got tags {nothing!r}; "
                          "return []")
        return f"{len(tags)} document tags from {len(items)} chunks"

    run("rollup", rollup)

    def uncertainty():
        for prediction in predictions:
            value = tt.uncertainty(task, prediction)
            try:
                ok = math.isfinite(float(value))
            except (TypeError, ValueError):
                ok = False
            if not ok:
                check.problem(f"uncertainty: returned {value!r} for {prediction!r}; return "
                              "a finite float (higher = ask the user sooner)")
                break

    run("uncertainty", uncertainty)

    def render():
        # labelled values, then what the model predicted (None too: "no answer")
        shown = [(e.text, e.value) for e in examples] + [
            (t, p.value) for t, p in zip(texts, predictions)]
        for text_, value in shown:
            text = tt.render(task, text_, value)
            if not isinstance(text, str):
                check.problem(f"render: returned {type(text).__name__} for "
                              f"{value!r}; return a one-line str")
                break

    run("render", render)


def _as_list(check: _Checker, got) -> list | None:
    """``got`` as a list; anything else (a generator, a tuple, None) is a problem, said
    once a check. None when it cannot be read as a sequence at all."""
    if isinstance(got, list):
        return got
    what = "None" if got is None else f"a {type(got).__name__}"
    message = f"predict: predict() returned {what}; return a list of Prediction, one per text"
    if message not in check.report.problems + check._step_problems:
        check.problem(message)
    try:
        return list(got)
    except TypeError:
        return None


def _number(x) -> float | None:
    try:
        return None if isinstance(x, (str, bytes)) else float(x)
    except (TypeError, ValueError):
        return None


def _differ(a, b) -> bool:
    x, y = _number(a), _number(b)
    return abs(x - y) > 1e-3 if x is not None and y is not None else a != b


def _num(x) -> str:
    return f"{_number(x):.4f}" if _number(x) is not None else repr(x)
