"""The conformance kit (doctagger.testing): it catches what it should, and every installed
task type — first-party and the example plugin — passes it."""
from __future__ import annotations

import json

import pytest

from doctagger import plugins
from doctagger.errors import InvalidLabelError, PluginError
from doctagger.hookspecs import hookimpl
from doctagger.tasktypes import DocumentTag, Prediction, TaskType, TrainOptions, TrainResult
from doctagger.testing import check_task_type, sample_examples, tiny_bert
# the kit's fixtures, as a plugin's conftest.py gets them with pytest_plugins = ["doctagger.testing"]
from doctagger.testing import doctagger_cli, doctagger_index, doctagger_plugin  # noqa: F401


# -- a task type that does everything right, and one that does everything wrong ---------------
class Fine(TaskType):
    """Predicts the label whose name occurs in the text (trained = a file of labels)."""

    name = "fine"
    value_kind = "class"

    def validate(self, task, value):
        if value not in task.labels:
            raise InvalidLabelError(f"unknown label {value!r}")
        return value

    def train(self, task, train, evaluation, options, output_dir):
        (output_dir / "labels.json").write_text(json.dumps(task.labels))
        return TrainResult(metrics={"accuracy": 1.0})

    def load(self, task, model_dir):
        labels = json.loads((model_dir / "labels.json").read_text())

        class Predictor:
            def predict(self, texts):
                out = []
                for text in texts:
                    hit = next((label for label in labels if label in text), labels[0])
                    out.append(Prediction(hit, 0.9, {label: 0.9 if label == hit else 0.1
                                                      for label in labels}))
                return out

        return Predictor()

    def evaluate(self, task, examples, predictions):
        right = sum(e.value == p.value for e, p in zip(examples, predictions))
        return {"accuracy": right / max(1, len(examples))}

    def rollup(self, task, items):
        return [DocumentTag(items[0].prediction.value, 0.9, [items[0].chunk_id])] if items else []


class Broken(Fine):
    name = "broken"

    def validate(self, task, value):
        if value == "no-such-label-zz":
            raise ValueError("nope")  # not InvalidLabelError
        return value  # accepts anything else

    def train(self, task, train, evaluation, options, output_dir):
        super().train(task, train, evaluation, options, output_dir)
        (output_dir / "config.json").write_text(json.dumps({"path": str(output_dir)}))
        return TrainResult(metrics={"when": object()})

    def load(self, task, model_dir):
        inner = super().load(task, model_dir)

        class Predictor:
            def predict(self, texts):
                got = inner.predict(texts)
                if len(texts) > 1:  # batch-dependent, and out of range
                    got = [Prediction(p.value, 1.5) for p in got]
                return got

        return Predictor()


def test_a_conforming_type_passes(tmp_path):
    report = check_task_type(Fine, labels=["alpha", "beta"], tmp_path=tmp_path)
    report.assert_ok()
    assert [s.status for s in report.steps] == ["ok"] * 11
    assert "ok      predict" in str(report)


def test_every_broken_promise_is_reported(tmp_path):
    report = check_task_type(Broken(), labels=["alpha", "beta"], tmp_path=tmp_path)
    assert not report.ok
    text = "\n".join(report.problems)
    assert "'no-such-label-zz' raised ValueError: nope" in text and "instead of InvalidLabelError" in text
    assert "accepted the bad value 42" in text
    assert "not JSON-serialisable" in text  # the metrics
    assert "config.json refer to the training folder" in text
    assert "predict: score 1.5 is not a number from 0 to 1" in text
    assert "the first text alone gets a different prediction than in a batch" in text
    assert [s.name for s in report.steps if s.status == "failed"] == [
        "validate", "train", "save", "predict"]
    with pytest.raises(AssertionError, match="task type 'broken' does not conform"):
        report.assert_ok()


def test_a_predictor_that_loses_items_stops_the_check(tmp_path):
    class Short(Fine):
        name = "short"

        def load(self, task, model_dir):
            inner = super().load(task, model_dir)

            class Predictor:
                def predict(self, texts):
                    return inner.predict(texts)[:-1]

            return Predictor()

    report = check_task_type(Short, labels=["alpha", "beta"], tmp_path=tmp_path)
    assert report.problems == ["predict: returned 7 predictions for 8 texts; return a list "
                               "with one Prediction per text, in order"]
    assert {s.name for s in report.steps if s.status == "skipped"} == {
        "evaluate", "rollup", "uncertainty", "render"}


def test_a_crash_names_the_line(tmp_path):
    class Crashes(Fine):
        name = "crashes"

        def rollup(self, task, items):
            return [DocumentTag("gamma", 2.0, [424242])] if items else []

        def uncertainty(self, task, prediction):
            raise KeyError("margin")

    report = check_task_type(Crashes, labels=["alpha", "beta"], tmp_path=tmp_path)
    text = "\n".join(report.problems)
    assert "tag label 'gamma' is not one of the task's labels" in text
    assert "has score 2.0" in text and "cites chunks [424242]" in text
    assert "uncertainty: raised KeyError: 'margin' (at test_conformance.py:" in text


def test_sample_examples_shapes():
    spans = sample_examples(["PER", "ORG"], value_kind="spans", per_label=2)
    for example in spans:
        assert [example.text[s["start"]:s["end"]].endswith(str(k))
                for k, s in enumerate(example.value)] == [True, True]
    multi = sample_examples(["a", "b"], multi_label=True, level="document", per_label=2)
    assert multi[-1].value == ["a", "b"] and multi[0].parts


def test_tiny_bert_tokenises_any_text(tmp_path):
    from transformers import AutoTokenizer

    folder = tiny_bert(tmp_path / "bert", ["Invoices are due"])
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.tokenize("invoices zebra") == ["invoices", "z", "##e", "##b", "##r", "##a"]
    assert json.loads((folder / "config.json").read_text())["hidden_size"] == 32


def test_fixtures(doctagger_cli, doctagger_index, doctagger_plugin):
    class Plugin:
        @hookimpl
        def register_task_types(self, register):
            register(Fine)

    doctagger_plugin(Plugin(), "fine-plugin")
    assert "fine" in plugins.task_types()
    assert doctagger_cli("tasks", "create", "t", "--type", "fine", "--labels", "alpha,beta"
                         ).exit_code == 0
    assert doctagger_index.task("t").type == "fine"  # the CLI wrote to the fixture's index
    rows = doctagger_cli.json("plugins", "--json")
    assert "fine-plugin" in {r["name"] for r in rows}


# -- the installed task types ------------------------------------------------------------------
def _installed(name):
    try:
        return plugins.get_task_type(name)
    except PluginError as exc:
        pytest.skip(f"task type '{name}' is not available: {exc}")


def _tiny_options(tmp_path, examples, **extra):
    base = tiny_bert(tmp_path / "tiny-bert", [e.text for e in examples])
    return TrainOptions(base_model=str(base), epochs=1, batch_size=8, seed=0, **extra)


@pytest.mark.parametrize("method, multi_label, level", [
    ("finetune", False, "chunk"), ("finetune", True, "chunk"), ("head", False, "document"),
    ("head", True, "chunk")])
def test_classification_conforms(tmp_path, method, multi_label, level):
    task_type = _installed("classification")
    labels = ["cardio", "neuro"]
    examples = sample_examples(labels, multi_label=multi_label, level=level)
    report = check_task_type(task_type, labels=labels, examples=examples, level=level,
                             multi_label=multi_label, tmp_path=tmp_path,
                             train_options=_tiny_options(tmp_path, examples, method=method))
    report.assert_ok()
    assert report.steps[3].name == "train" and report.steps[3].status == "ok"


def test_ner_conforms(tmp_path):
    task_type = _installed("ner")
    labels = ["PER", "ORG"]
    examples = sample_examples(labels, value_kind="spans")
    report = check_task_type(task_type, labels=labels, examples=examples, tmp_path=tmp_path,
                             train_options=_tiny_options(tmp_path, examples))
    report.assert_ok()


def test_keywords_conforms(tmp_path):
    task_type = _installed("keywords")
    labels = ["invoice", "receipt"]
    report = check_task_type(task_type, labels=labels, tmp_path=tmp_path, multi_label=True,
                             task_options={"rules": {label: label for label in labels}})
    report.assert_ok()


# -- predictions: normalised values, one message per broken promise ---------------------------
class Multi(Fine):
    """Multi-label: validate accepts a bare label (as the keywords type does) and gives a
    sorted list; the predictor returns whatever ``shape`` makes of the labels it finds."""

    name = "multi"
    shape = staticmethod(lambda hits: sorted(hits))

    def validate(self, task, value):
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or any(v not in task.labels for v in value):
            raise InvalidLabelError(f"give a list of labels, not {value!r}")
        return sorted(set(value))

    def load(self, task, model_dir):
        shape = self.shape

        class Predictor:
            def predict(self, texts):
                out = []
                for text in texts:
                    hits = [label for label in task.labels if label in text]
                    value = shape(hits)
                    out.append(Prediction(value, 0.0 if value is None else 0.9))
                return out

        return Predictor()

    def rollup(self, task, items):
        return []


def _multi(shape, **kw):
    return type("M", (Multi,), {"shape": staticmethod(shape), **kw})


def test_a_bare_string_for_a_multi_label_task_is_refused(tmp_path):
    report = check_task_type(_multi(lambda hits: hits[0]), labels=["alpha", "beta"],
                             multi_label=True, tmp_path=tmp_path)
    assert report.problems == [
        "predict: predict() returned 'alpha' for a multi-label task; return the normalised "
        "value ['alpha'] (what validate() gives) (8 of 8 texts; the first is shown)",
        "predict (long text): predict() returned 'alpha' for a multi-label task; return the "
        "normalised value ['alpha'] (what validate() gives)"]


def test_an_unsorted_list_is_refused_and_none_is_no_answer(tmp_path):
    report = check_task_type(_multi(lambda hits: sorted(hits, reverse=True)),
                             labels=["alpha", "beta"], multi_label=True, tmp_path=tmp_path)
    # only the texts that name both labels get an unsorted list
    assert report.problems == [
        "predict: predict() returned ['beta', 'alpha'] for a multi-label task; return the "
        "normalised value ['alpha', 'beta'] (what validate() gives) (2 of 8 texts)",
        "predict (long text): predict() returned ['beta', 'alpha'] for a multi-label task; "
        "return the normalised value ['alpha', 'beta'] (what validate() gives)"]
    none = check_task_type(_multi(lambda hits: sorted(hits) if "beta" in hits else None),
                           labels=["alpha", "beta"], multi_label=True, tmp_path=tmp_path)
    none.assert_ok()


def test_a_generator_is_named(tmp_path):
    class Lazy(Fine):
        name = "lazy"

        def load(self, task, model_dir):
            inner = super().load(task, model_dir)

            class Predictor:
                def predict(self, texts):
                    yield from inner.predict(texts)

            return Predictor()

    report = check_task_type(Lazy, labels=["alpha", "beta"], tmp_path=tmp_path)
    assert report.problems == ["predict: predict() returned a generator; return a list of "
                               "Prediction, one per text"]
    assert [s.status for s in report.steps[-4:]] == ["ok"] * 4  # the check went on


def test_a_tuple_or_none_is_named(tmp_path):
    def make(result):
        class T(Fine):
            name = "t"

            def load(self, task, model_dir):
                inner = super().load(task, model_dir)

                class Predictor:
                    def predict(self, texts):
                        return result(inner.predict(texts))

                return Predictor()

        return T

    report = check_task_type(make(tuple), labels=["alpha", "beta"], tmp_path=tmp_path)
    assert report.problems == ["predict: predict() returned a tuple; return a list of "
                               "Prediction, one per text"]
    report = check_task_type(make(lambda got: None), labels=["alpha", "beta"],
                             tmp_path=tmp_path / "none")
    assert report.problems == ["predict: predict() returned None; return a list of "
                               "Prediction, one per text"]
    assert {s.name for s in report.steps if s.status == "skipped"} == {
        "evaluate", "rollup", "uncertainty", "render"}


def test_a_broken_promise_is_said_once(tmp_path):
    report = check_task_type(Broken(), labels=["alpha", "beta"], tmp_path=tmp_path)
    scores = [p for p in report.problems if "score 1.5" in p]
    assert scores == ["predict: score 1.5 is not a number from 0 to 1 (8 of 8 texts)"]
    assert len(report.problems) == len(set(report.problems))


class Bare:
    """A task type that does not subclass TaskType, and lacks ``evaluate``."""

    name = "bare"
    value_kind = "class"
    validate = Fine.validate
    check_labels = TaskType.check_labels
    train = Fine.train
    load = Fine.load
    rollup = Fine.rollup
    uncertainty = TaskType.uncertainty
    render = TaskType.render


def test_a_missing_method_is_reported_once(tmp_path):
    report = check_task_type(Bare, labels=["alpha", "beta"], tmp_path=tmp_path)
    assert report.problems == ["interface: no method evaluate()"]
    evaluate = next(s for s in report.steps if s.name == "evaluate")
    assert evaluate.status == "skipped" and "no method evaluate()" in evaluate.detail
    # without a method every later step needs, the check stops after the interface
    no_load = type("NoLoad", (Bare,), {"load": None, "evaluate": Fine.evaluate})
    report = check_task_type(no_load, labels=["alpha", "beta"], tmp_path=tmp_path / "x")
    assert report.problems == ["interface: no method load()"]
    assert [s.status for s in report.steps[1:]] == ["skipped"] * 10


def test_no_answer_renders_as_such(tmp_path):
    from doctagger.tasktypes import Task

    task = Task("t", "x", ["a", "b"])
    assert TaskType().render(task, "text", None) == "(no answer)"
    assert TaskType().render(task, "text", ["a", "b"]) == "a, b"

    class Silent(Multi):  # predicts None; render gets it too
        name = "silent"
        shape = staticmethod(lambda hits: None)
        seen = []

        def render(self, task, text, value):
            Silent.seen.append(value)
            return super().render(task, text, value)

    check_task_type(Silent, labels=["alpha", "beta"], multi_label=True,
                    tmp_path=tmp_path).assert_ok()
    assert None in Silent.seen
