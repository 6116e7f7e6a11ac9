"""The plugin author's test kit: pytest fixtures, a tiny model, and a conformance check.

Use it from a plugin's tests (pytest must be installed; nothing here is imported by the CLI)::

    # tests/conftest.py, at the root of your tests
    pytest_plugins = ["doctagger.testing"]

    # tests/test_my_type.py
    from doctagger.testing import check_task_type

    def test_conformance(tmp_path):
        report = check_task_type(MyTaskType, labels=["a", "b"], tmp_path=tmp_path)
        report.assert_ok()

    def test_cli(doctagger_cli):
        doctagger_cli("tasks", "create", "t", "--type", "mytype", "--labels", "a,b")

Fixtures: ``doctagger_index`` (a fresh index in ``tmp_path``, with ``DOCTAGGER_INDEX``
pointing at it and the Hub switched off), ``doctagger_cli`` (runs ``doctagger ...`` in process
against that index) and ``doctagger_plugin`` (registers an in-process plugin for one test).

:func:`check_task_type` drives a task type through everything the core will do with it:
check_labels → validate (good and bad values) → train → save (the model folder is moved, as
the registry does) → load → predict → evaluate → roll-up → uncertainty → render, and reports
every step that broke, in plain words. :func:`tiny_bert` writes a randomly initialised
two-layer BERT (with a WordPiece vocabulary built from your texts) to use as ``base_model``
so transformer task types train in seconds with no network.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import string
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import pytest

from doctagger.errors import InvalidLabelError
from doctagger.tasktypes import (ChunkPrediction, DocumentTag, Example, Prediction, Task,
                                 TrainOptions)

__all__ = ["check_task_type", "ConformanceReport", "sample_examples", "tiny_bert",
           "CliInvoker", "doctagger_index", "doctagger_cli", "doctagger_plugin"]

BAD_LABEL = "no-such-label-zz"


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture
def doctagger_index(tmp_path, monkeypatch):
    """A fresh, empty :class:`doctagger.index.Index` in ``tmp_path / "index"``.

    ``DOCTAGGER_INDEX`` points at it for the length of the test, the Hugging Face Hub is
    switched off (``HF_HUB_OFFLINE=1``) and plugins are reloaded before and after, so a test
    that changes ``DOCTAGGER_LOAD_PLUGINS`` sees its own plugin set."""
    from doctagger import plugins
    from doctagger.index import Index

    path = tmp_path / "index"
    monkeypatch.setenv("DOCTAGGER_INDEX", str(path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    monkeypatch.delenv("DOCTAGGER_RAISE_ERRORS", raising=False)
    plugins.reset()
    index = Index(path)
    yield index
    index.close()
    plugins.reset()


class CliInvoker:
    """Runs ``doctagger ARGS...`` in process against one index, as a user would.

    ``cli("tasks", "list")`` returns a ``click.testing.Result`` (``exit_code``, ``output``
    with stderr mixed in, ``stdout``, ``stderr``); ``cli.json("plugins", "--json")`` checks
    the exit code is 0 and returns the parsed standard output."""

    def __init__(self, index_path: Path):
        from click.testing import CliRunner

        self.index_path = Path(index_path)
        self.runner = CliRunner()

    def __call__(self, *args, input: str | None = None, env: dict | None = None, **extra):
        """``extra`` goes to Click (e.g. ``terminal_width=78`` for help as a shell shows it)."""
        from doctagger.cli import cli

        env = {"DOCTAGGER_INDEX": str(self.index_path), **(env or {})}
        return self.runner.invoke(cli, [str(a) for a in args], input=input, env=env,
                                  catch_exceptions=True, prog_name="doctagger", **extra)

    def json(self, *args, input: str | None = None, env: dict | None = None):
        result = self(*args, input=input, env=env)
        assert result.exit_code == 0, (
            f"doctagger {' '.join(map(str, args))} exited {result.exit_code}:\n{result.output}")
        return json.loads(result.stdout)


@pytest.fixture
def doctagger_cli(doctagger_index):
    """A :class:`CliInvoker` bound to ``doctagger_index``. Commands that plugins add during
    the test are taken off the ``doctagger`` group afterwards, so they cannot leak into
    other tests of the same session."""
    from doctagger.cli import cli

    before = dict(cli.commands)
    yield CliInvoker(doctagger_index.path)
    cli.commands.clear()
    cli.commands.update(before)
    if "_plugin_state" in vars(cli):  # let the group ask the plugins for commands again
        del cli._plugin_state


@pytest.fixture
def doctagger_plugin():
    """``doctagger_plugin(module_or_object, name)`` registers an in-process plugin (an object
    with ``@hookimpl`` functions) for the length of one test."""
    from doctagger import plugins

    names: list[str] = []

    def register(plugin, name: str):
        plugins.register_plugin(plugin, name)
        names.append(name)
        return plugin

    yield register
    for name in names:
        plugins.unregister_plugin(name)


# -- a tiny model -----------------------------------------------------------------------


def tiny_bert(path: str | os.PathLike, texts: Iterable[str] = (), *, layers: int = 2,
              hidden: int = 32, heads: int = 2, intermediate: int = 64,
              max_position: int = 512, seed: int = 0) -> Path:
    """Write a randomly initialised BERT encoder and its tokenizer to ``path``; return it.

    The WordPiece vocabulary holds the lower-cased words of ``texts`` plus every ASCII
    letter, digit and punctuation mark (and their ``##`` continuations), so any text
    tokenises with real offsets. Pass the folder as ``TrainOptions(base_model=...)``: a task
    type trains on it in seconds, offline. The weights are random, so do not expect a
    tiny model to learn much; it proves the plumbing, not the accuracy."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    words = sorted({w.lower() for t in texts for w in re.findall(r"\w+", t)} - set(chars))
    vocab = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words + chars
             + ["##" + c for c in string.ascii_lowercase + string.digits])
    tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(dict.fromkeys(vocab))})
    (path / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n", encoding="utf-8")
    config = BertConfig(vocab_size=len(tokenizer.get_vocab()), hidden_size=hidden,
                        num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=intermediate, max_position_embeddings=max_position)
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = BertModel(config)
    finally:
        torch.random.set_rng_state(state)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


# -- examples -----------------------------------------------------------------------------


_FILLERS = [
    "The quarterly report for the northern office",
    "A short note written after the meeting",
    "Minutes of the annual review, second section",
    "This passage was copied from page three",
    "An appendix with tables and a summary",
    "Letter sent to the committee last spring",
]


def sample_examples(labels: Sequence[str], *, value_kind: str = "class",
                    multi_label: bool = False, level: str = "chunk",
                    per_label: int = 4) -> list[Example]:
    """A few labelled examples in which each label is plainly visible in the text.

    - ``class``: every text names its label ("... about invoice ..."), value ``label``
      (``[label]`` for multi-label; the last text of each round carries two labels);
    - ``spans``: every text holds one entity per label, written ``LabelEntity<n>``, with a
      span over it.
    Each example is its own document (``group``). For ``level="document"`` examples carry
    ``parts`` (their sentences), as the core builds them from chunks."""
    out: list[Example] = []
    labels = list(labels)
    for i in range(per_label):
        filler = _FILLERS[i % len(_FILLERS)]
        for j, label in enumerate(labels):
            n = i * len(labels) + j
            if value_kind == "spans":
                text, spans = f"{filler} (item {n}). ", []
                for k, other in enumerate(labels[j:] + labels[:j]):
                    entity = f"{other.capitalize()}Entity{n}{k}"
                    text += "It names "
                    spans.append({"start": len(text), "end": len(text) + len(entity),
                                  "label": other})
                    text += entity + ". "
                text = text.strip()
                value: Any = spans
            else:
                text = f"{filler} (item {n}) is about {label}. Every line here concerns {label}."
                value = label
                if multi_label:
                    value = [label]
                    if i == per_label - 1 and len(labels) > 1:
                        other = labels[(j + 1) % len(labels)]
                        text += f" It also mentions {other}."
                        value = sorted({label, other})
            parts = re.split(r"(?<=\.) ", text) if level == "document" else None
            out.append(Example(text=text, value=value, group=f"doc-{n}", parts=parts,
                               chunk_id=None if level == "document" else n + 1,
                               document_id=n + 1))
    return out


# -- the conformance report -----------------------------------------------------------------


@dataclass
class Step:
    name: str
    status: str  # "ok" | "failed" | "skipped"
    detail: str = ""
    seconds: float = 0.0


@dataclass
class ConformanceReport:
    """What :func:`check_task_type` found. ``ok`` is True when nothing broke;
    ``problems`` lists what did, one sentence each; ``str(report)`` shows every step."""

    task_type: str
    steps: list[Step] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def assert_ok(self) -> None:
        """Raise AssertionError listing every problem (pytest shows the whole report)."""
        if self.problems:
            raise AssertionError(f"task type '{self.task_type}' does not conform:\n{self}")

    def __str__(self) -> str:
        marks = {"ok": "ok     ", "failed": "FAILED ", "skipped": "skipped"}
        lines = [f"{marks[s.status]} {s.name:<13} {s.seconds:6.2f}s  {s.detail}".rstrip()
                 for s in self.steps]
        if self.problems:
            lines.append("problems:")
            lines.extend(f"  - {p}" for p in self.problems)
        return "\n".join(lines)


class _Stop(Exception):
    """A step failed in a way that makes the later steps meaningless."""


class _Checker:
    def __init__(self, report: ConformanceReport):
        self.report = report
        self._step_problems: list[str] = []

    def problem(self, message: str) -> None:
        self._step_problems.append(message)

    def run(self, name: str, fn, *, fatal: bool = False):
        """Run one step; record its problems. Later steps are skipped when the step raises
        _Stop, or when a ``fatal`` step raises (later steps need what it makes)."""
        self._step_problems = []
        started = time.perf_counter()
        result = None
        stop = False
        try:
            result = fn()
        except _Stop:  # the step itself says nothing after it can run
            stop = True
        except Exception as exc:  # a fatal step that could not finish stops the check
            self.problem(f"{name}: raised {_describe(exc)}")
            stop = fatal
        seconds = time.perf_counter() - started
        status = "failed" if self._step_problems else "ok"
        detail = self._step_problems[0] if self._step_problems else (
            result if isinstance(result, str) else "")
        self.report.steps.append(Step(name, status, detail, seconds))
        self.report.problems.extend(self._step_problems)
        if stop and self._step_problems:
            raise _Stop
        return result

    def skip(self, name: str, why: str) -> None:
        self.report.steps.append(Step(name, "skipped", why))


def _describe(exc: BaseException) -> str:
    """'ValueError: message (at file.py:12 in fn)' — the frame of the task type's code."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    for frame in reversed(frames):
        if not frame.filename.endswith(("doctagger/testing.py", "doctagger\\testing.py")):
            where = f" (at {Path(frame.filename).name}:{frame.lineno} in {frame.name})"
            break
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message}{where}"


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
        return f"value_kind={value_kind}, needs_training={needs_training}"

    check.run("interface", interface, fatal=True)
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
        got = predictor.predict(list(texts))
        if not isinstance(got, list) or len(got) != len(texts):
            n = len(got) if hasattr(got, "__len__") else "?"
            check.problem(f"predict: returned {n} predictions for {len(texts)} texts; "
                          "return a list with one Prediction per text, in order")
            raise _Stop
        for text, prediction in zip(texts, got):
            _check_prediction(check, tt, task, text, prediction, "predict")
        state["predictions"] = got
        empty = predictor.predict([])
        if list(empty) != []:
            check.problem(f"predict: an empty batch returned {empty!r}; return []")
        single = predictor.predict([texts[0]])
        if len(single) != 1 or single[0].value != got[0].value \
                or abs(float(single[0].score) - float(got[0].score)) > 1e-3:
            check.problem("predict: the first text alone gets a different prediction than in "
                          f"a batch ({single[0].value!r}, {float(single[0].score):.4f} vs "
                          f"{got[0].value!r}, {float(got[0].score):.4f}); padding or batch "
                          "order leaks into the result")
        long = predictor.predict([long_text])
        if len(long) != 1:
            check.problem("predict: a long text did not give exactly one prediction")
        else:
            _check_prediction(check, tt, task, long_text, long[0], "predict (long text)")
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

    check.run("evaluate", evaluate)

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

    check.run("rollup", rollup)

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

    check.run("uncertainty", uncertainty)

    def render():
        for example in examples:
            text = tt.render(task, example.text, example.value)
            if not isinstance(text, str):
                check.problem(f"render: returned {type(text).__name__} for "
                              f"{example.value!r}; return a one-line str")
                break

    check.run("render", render)


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
