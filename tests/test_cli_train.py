"""train / eval / models through the CLI, with an in-process fake task type (milliseconds)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from doctagger.errors import InvalidLabelError
from doctagger.hookspecs import hookimpl
from doctagger.index import now, text_hash
from doctagger.tasktypes import Prediction, TrainResult


class FakePredictor:
    def __init__(self, table: dict, default: str):
        self.table, self.default = table, default

    def predict(self, texts):
        return [Prediction(value=self.table.get(t, self.default), score=0.9) for t in texts]


class FakeClassifier:
    """Memorises its training texts; predicts the majority label for unseen texts."""

    name = "fakecls"
    value_kind = "class"
    needs_training = True

    def __init__(self):
        self.calls = []
        self.fail_with = None
        self.before_checkpoint = False  # fail_with strikes before the first checkpoint
        self.metrics = None  # held-out metrics to report instead of the computed ones

    def check_labels(self, labels, *, multi_label, level):
        pass

    def validate(self, task, value):
        if value not in task.labels:
            raise InvalidLabelError(f"unknown label {value!r}")
        return value

    def train(self, task, train, evaluation, options, output_dir):
        from doctagger import training

        checkpoints = training.checkpoint_dir(options, output_dir)
        resumed = training.resume_checkpoint(options, checkpoints)
        self.calls.append({"train": list(train), "eval": list(evaluation), "options": options,
                           "output_dir": Path(output_dir), "resumed": resumed})
        if self.fail_with is not None and self.before_checkpoint:  # nothing saved yet
            raise self.fail_with
        if self.fail_with is not None:  # interrupted after epoch 2 of the planned ones
            (checkpoints / "checkpoint-3").mkdir(parents=True, exist_ok=True)
            planned = training.hyperparameters(options, len(train), {"epochs": 7})["epochs"]
            (checkpoints / "checkpoint-3" / "trainer_state.json").write_text(json.dumps(
                {"epoch": 2.0, "global_step": 3, "num_train_epochs": planned}))
            raise self.fail_with
        counts = {}
        for ex in train:
            counts[ex.value] = counts.get(ex.value, 0) + 1
        majority = max(sorted(counts), key=counts.get)
        table = {}
        for ex in train:  # document-level: learns the chunks, as tag predicts them
            table.update({part: ex.value for part in ex.parts} if ex.parts else {ex.text: ex.value})
        (Path(output_dir) / "model.json").write_text(json.dumps(
            {"table": table, "default": majority}))
        right = sum(1 for ex in evaluation if ex.value == majority)
        metrics = ({"accuracy": right / len(evaluation), "macro_f1": 0.5} if evaluation else {})
        if evaluation and self.metrics is not None:
            metrics = self.metrics
        hp = training.hyperparameters(options, len(train), {"epochs": 7})
        return TrainResult(metrics=metrics, info={
            "method": "head" if options.method == "auto" else options.method,
            "base_model": options.base_model or "fake-base", "hyperparameters": hp,
            "device": "cpu"})

    def load(self, task, model_dir):
        data = json.loads((Path(model_dir) / "model.json").read_text())
        return FakePredictor(data["table"], data["default"])

    def rollup(self, task, items):
        from collections import Counter

        from doctagger.tasktypes import DocumentTag

        votes = Counter(item.prediction.value for item in items)
        return [DocumentTag(label=label, score=n / len(items)) for label, n in votes.items()]

    def evaluate(self, task, examples, predictions):
        from doctagger.training import classification_scores

        return classification_scores([e.value for e in examples],
                                     [p.value for p in predictions], task.labels)


class FakePlugin:
    def __init__(self, task_type):
        self.task_type = task_type

    @hookimpl
    def register_task_types(self, register):
        register(self.task_type)


@pytest.fixture
def fake(monkeypatch, register_plugin):
    monkeypatch.setenv("DOCTAGGER_LOAD_PLUGINS", "")
    task_type = FakeClassifier()
    register_plugin(FakePlugin(task_type), "fake-plugin")
    return task_type


def make_task(index, name="topic", labels=("a", "b"), docs=None, level="chunk",
              type_="fakecls"):
    """A task with labelled chunks: docs = {doc_name: [(text, label), ...]}."""
    stamp = now()
    with index.write() as db:
        task_id = db["tasks"].insert({"name": name, "type": type_,
                                      "labels": json.dumps(list(labels)), "multi_label": 0,
                                      "level": level, "options": "{}",
                                      "created_at": stamp}).last_pk
        for d, (doc, rows) in enumerate((docs or {}).items()):
            doc_id = db["documents"].insert({"path": f"/docs/{doc}.pdf", "status": "ok",
                                             "source": "file", "pages": 1,
                                             "chunk_count": len(rows)}).last_pk
            for seq, (text, label) in enumerate(rows):
                chunk_id = db["chunks"].insert({"document_id": doc_id, "seq": seq, "text": text,
                                                "page": 1, "text_hash": text_hash(text)}).last_pk
                if label is not None and level == "document" and seq == 0:
                    db["labels"].insert({"task_id": task_id, "target": "document",
                                         "document_id": doc_id, "value": json.dumps(label),
                                         "source": "import", "created_at": stamp,
                                         "updated_at": stamp})
                elif label is not None and level == "chunk":
                    db["labels"].insert({"task_id": task_id, "target": "chunk",
                                         "document_id": doc_id, "chunk_id": chunk_id,
                                         "text_hash": text_hash(text), "text": text,
                                         "value": json.dumps(label), "source": "import",
                                         "created_at": stamp, "updated_at": stamp})
    return task_id


def corpus(n_docs=10, per_doc=3):
    """Documents that each hold one label, alternating a/b."""
    return {f"doc{d}": [(f"document {d} passage {i} about {'ab'[d % 2]}", "ab"[d % 2])
                        for i in range(per_doc)] for d in range(n_docs)}


def test_train_registers_an_active_version(fake, index, invoke, index_path):
    make_task(index, docs=corpus())
    result = invoke("train", "topic", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["task"] == "topic" and out["version"] == 1 and out["active"] is True
    assert out["method"] == "head" and out["base_model"] == "fake-base"
    assert out["train_examples"] + out["eval_examples"] == 30
    assert out["eval_examples"] > 0
    assert out["headline"] == {"metric": "macro_f1", "value": 0.5}
    folder = index_path / "models" / "topic" / "v1"
    assert Path(out["path"]) == folder.resolve()
    assert {"model.json", "doctagger.json", "README.md"} <= {p.name for p in folder.iterdir()}
    meta = json.loads((folder / "doctagger.json").read_text())
    assert meta["labels"] == ["a", "b"] and meta["version"] == 1
    assert meta["data_fingerprint"].startswith("sha256:")
    assert meta["parameters"]["epochs"] == 7
    assert "transformers" in meta["libraries"] and meta["hardware"]["device"] == "cpu"
    assert meta["split"]["eval"] == out["eval_examples"]
    assert len(meta["split"]["eval_ids"]) == out["eval_examples"]
    # no document on both sides of the split
    call = fake.calls[0]
    train_docs = {ex.group for ex in call["train"]}
    eval_docs = {ex.group for ex in call["eval"]}
    assert train_docs and eval_docs and not train_docs & eval_docs
    assert {ex.value for ex in call["eval"]} == {"a", "b"}
    # the model folder was built in a hidden folder that is gone now
    assert call["output_dir"].name.startswith(".tmp-v1-") and not call["output_dir"].exists()
    assert not (index_path / "models" / "topic" / ".checkpoints").exists()
    row = index.one("select t.active_model_id, m.version from tasks t "
                    "join models m on m.id = t.active_model_id where t.name = 'topic'")
    assert row["version"] == 1
    assert "# topic v1" in (folder / "README.md").read_text()


def test_train_text_output_and_options(fake, index, invoke):
    make_task(index, docs=corpus())
    result = invoke("train", "topic", "--preset", "aggressive", "--epochs", "2",
                    "--method", "finetune", "--seed", "7", "--eval-fraction", "0.3",
                    "--base-model", "somewhere/else")
    assert result.exit_code == 0, result.output
    assert "Trained topic v1 (finetune from somewhere/else)" in result.stdout
    assert "Held-out (" in result.stdout and "macro_f1 0.500" in result.stdout
    options = fake.calls[0]["options"]
    assert (options.preset, options.epochs, options.method, options.seed,
            options.eval_fraction) == ("aggressive", 2.0, "finetune", 7, 0.3)
    hp = json.loads(index.one("select params from models")["params"])
    # preset over plugin defaults, explicit option over preset
    assert hp["epochs"] == 2.0 and hp["learning_rate"] == 5e-5 and hp["weight_decay"] == 0.1
    assert "time_budget" not in options.extra  # the task type's own rule decides
    assert invoke("train", "topic", "--time-budget", "90").exit_code == 0
    assert fake.calls[-1]["options"].extra["time_budget"] == 90.0
    bad = invoke("train", "topic", "--time-budget", "-1")
    assert bad.exit_code == 2 and "--time-budget" in bad.output


def test_train_refuses_a_label_without_examples(fake, index, invoke, index_path):
    make_task(index, labels=("a", "b", "c"), docs=corpus())
    result = invoke("train", "topic")
    assert result.exit_code == 1
    assert result.output.startswith(
        "Error: too few examples to train on: 'c' (0); each label needs at least 2, one to "
        "learn from and one to test the model on. Label at least 2 more 'c' with 'doctagger "
        "label topic'")
    assert "--allow-few-examples" in result.output and "at least 10" not in result.output
    assert not fake.calls
    assert index.scalar("select count(*) from models") == 0
    assert not (index_path / "models" / "topic" / "v1").exists()


def test_allow_few_examples_also_allows_a_label_added_without_examples(fake, index, invoke):
    """QA: after 'tasks add-labels', --allow-few-examples (help: "fewer than 2") still
    refused a label with none."""
    make_task(index, labels=("a", "b"), docs=corpus())
    added = invoke("tasks", "add-labels", "topic", "c")
    assert added.exit_code == 0, added.output
    result = invoke("train", "topic", "--allow-few-examples", "--json")
    assert result.exit_code == 0, result.output
    assert ("Warning: no examples for 'c': the model can never predict a label it has not "
            "seen; label at least 2 with 'doctagger label topic' and train again"
            in result.stderr)
    out = json.loads(result.stdout)
    assert out["active"] and any(w.startswith("no examples for 'c'") for w in out["warnings"])
    assert fake.calls[0]["train"] and fake.calls[0]["eval"]
    help_text = invoke("train", "--help").output
    assert "fewer than 2 examples, or none" in " ".join(help_text.split())


def test_train_refuses_a_task_with_no_labels(fake, index, invoke):
    make_task(index, docs={"d": [("some text", None)]})
    result = invoke("train", "topic")
    assert result.exit_code == 1
    assert "has no labelled examples yet" in result.output


def test_train_warns_about_the_guides_pitfalls(fake, index, invoke):
    docs = corpus(n_docs=4, per_doc=2)
    docs["dup"] = [("document 0 passage 0 about a", "b")]  # same text, other label
    make_task(index, docs=docs)
    result = invoke("train", "topic")
    assert result.exit_code == 0, result.output
    assert "Warning: few examples for 'a'" in result.stderr
    assert "labelled differently in different places" in result.stderr
    meta = json.loads(index.one("select info from models")["info"])
    assert any("few examples" in w for w in meta["warnings"])


def test_tiny_data_trains_without_heldout_evaluation(fake, index, invoke):
    make_task(index, docs={"only": [("one a", "a"), ("one b", "b")]})
    result = invoke("train", "topic", "--json", "--allow-few-examples")
    assert result.exit_code == 0, result.output
    assert "NO HELD-OUT EVALUATION" in result.stderr
    out = json.loads(result.stdout)
    assert out["eval_examples"] == 0 and out["train_examples"] == 2
    assert out["active"] and out["activation"]["reason"] == "first"
    assert not fake.calls[0]["eval"]
    result = invoke("eval", "topic")
    assert result.exit_code == 1
    assert "trained without a held-out set" in result.output and "--file" in result.output


def test_ctrl_c_registers_nothing_and_resume_continues(fake, index, invoke, index_path):
    make_task(index, docs=corpus())
    fake.fail_with = KeyboardInterrupt()
    result = invoke("train", "topic")
    assert result.exit_code == 1
    assert "interrupted: no version was registered" in result.output
    assert "--resume" in result.output
    assert index.scalar("select count(*) from models") == 0
    topic_dir = index_path / "models" / "topic"
    assert [p.name for p in topic_dir.iterdir()] == [".checkpoints"]
    fake.fail_with = None
    result = invoke("train", "topic", "--resume", "--method", "finetune")
    assert result.exit_code == 1
    assert ("cannot resume topic with --method finetune (the interrupted run had auto): "
            "leave it out to resume that run") in result.output
    result = invoke("train", "topic", "--resume")
    assert result.exit_code == 0, result.output
    assert "Resuming topic: auto, epoch 2 of 7" in result.stderr
    assert fake.calls[-1]["resumed"].endswith("checkpoint-3")
    assert sorted(p.name for p in topic_dir.iterdir()) == ["v1"]


def test_resume_refuses_checkpoints_of_other_data(fake, index, invoke):
    make_task(index, docs=corpus())
    fake.fail_with = KeyboardInterrupt()
    invoke("train", "topic")
    fake.fail_with = None
    with index.write() as db:
        db.execute("update labels set value = '\"b\"' where id = 1")
    result = invoke("train", "topic", "--resume")
    assert result.exit_code == 1
    assert "labels changed since the interrupted run" in result.output


def test_a_failing_task_type_leaves_no_version(fake, index, invoke, index_path):
    make_task(index, docs=corpus())
    fake.fail_with = RuntimeError("boom")
    result = invoke("train", "topic")
    assert result.exit_code == 1
    assert "boom" in result.output
    assert index.scalar("select count(*) from models") == 0
    assert not list((index_path / "models" / "topic").glob("v*"))
    assert not list((index_path / "models" / "topic").glob(".tmp-*"))


def test_report_to_needs_the_package(fake, index, invoke, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("tensorboard") else real(name, *a))
    make_task(index, docs=corpus())
    result = invoke("train", "topic", "--report-to", "tensorboard")
    assert result.exit_code == 2
    assert "tensorboard is not installed: pip install tensorboard" in result.output
    assert not fake.calls


def test_bad_options_are_usage_errors(fake, index, invoke):
    make_task(index, docs=corpus())
    result = invoke("train", "topic", "--eval-fraction", "1")
    assert result.exit_code == 2 and "--eval-fraction" in result.output
    result = invoke("train", "topic", "--preset", "wild")
    assert result.exit_code == 2 and "--preset" in result.output
    result = invoke("train", "nosuch")
    assert result.exit_code == 1 and "no task 'nosuch'" in result.output


def test_models_list_show_use(fake, index, invoke):
    make_task(index, docs=corpus())
    assert invoke("models").output.strip() == "No models yet: train one with 'doctagger train TASK'."
    assert invoke("train", "topic").exit_code == 0
    assert invoke("train", "topic", "--method", "finetune").exit_code == 0
    listing = invoke("models")
    assert listing.exit_code == 0
    lines = listing.stdout.splitlines()
    assert lines[0].split() == ["task", "version", "active", "method", "base", "model",
                                "score", "created"]
    assert lines[2].split()[:3] == ["topic", "v1", "head"]
    assert lines[3].split()[:4] == ["topic", "v2", "*", "finetune"]
    records = json.loads(invoke("models", "topic", "--json").stdout)
    assert [(r["version"], r["active"]) for r in records] == [(1, False), (2, True)]
    used = invoke("models", "use", "topic", "v1")
    assert used.exit_code == 0
    assert used.stdout.strip() == "topic: v1 is now active (was v2)."
    shown = json.loads(invoke("models", "show", "topic", "--json").stdout)
    assert shown["version"] == 1 and shown["active"] and shown["card"].endswith("README.md")
    text = invoke("models", "show", "topic", "2").stdout
    assert text.startswith("topic v2\n") and "macro_f1:" in text and "epochs:" in text
    missing = invoke("models", "use", "topic", "9")
    assert missing.exit_code == 1 and "has no model v9" in missing.output
    bad = invoke("models", "show", "topic", "latest")
    assert bad.exit_code == 1 and "is not a model version" in bad.output


def test_eval_heldout_writes_reports(fake, index, invoke, index_path):
    make_task(index, docs=corpus())
    assert invoke("train", "topic").exit_code == 0
    result = invoke("eval", "topic")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("topic v1 on held-out (")
    assert "macro_f1" in result.stdout and "precision" in result.stdout
    folder = index_path / "models" / "topic" / "v1" / "eval"
    assert sorted(p.name for p in folder.iterdir()) == [
        "heldout-confusion.png", "heldout.json", "heldout.md"]
    assert (folder / "heldout-confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((folder / "heldout.json").read_text())
    # the fake memorised its training texts: held-out texts get the majority label
    assert saved["metrics"]["accuracy"] == 0.5 and saved["metrics"]["labels"] == ["a", "b"]
    assert "| a |" in (folder / "heldout.md").read_text()
    out = json.loads(invoke("eval", "topic", "--json").stdout)
    assert set(out) == {"task", "version", "source", "examples", "metrics", "seconds",
                        "created_at", "reports"}


def test_eval_on_a_file(fake, index, invoke, tmp_path):
    make_task(index, docs=corpus())
    assert invoke("train", "topic").exit_code == 0
    gold = tmp_path / "gold.csv"
    gold.write_text("text,label\ndocument 0 passage 0 about a,a\nsomething new,b\n")
    out = json.loads(invoke("eval", "topic", "--file", gold, "--json").stdout)
    assert out["source"] == str(gold) and out["examples"] == 2
    assert out["reports"]["json"].endswith("file-gold.json")
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nhello,zzz\n")
    result = invoke("eval", "topic", "--file", bad)
    assert result.exit_code == 1 and "line 2" in result.output and "zzz" in result.output
    result = invoke("eval", "topic", "--model", "v4")
    assert result.exit_code == 1 and "has no model v4" in result.output


def test_every_command_and_option_has_help():
    from doctagger.cli import cli
    from doctagger.cli.models import models
    from doctagger.cli.train import eval_cmd, train

    commands = [train, eval_cmd, models, *models.commands.values()]
    for command in commands:
        assert command.help and "\b" in command.help, command.name
        for param in command.params:
            if param.param_type_name == "option":
                assert param.help, f"{command.name} {param.name}"
    assert {"train", "eval", "models"} <= set(cli.commands)


def test_eval_of_a_document_task_rolls_chunk_predictions_up(fake, index, invoke, tmp_path):
    """Document-level: eval predicts each chunk and rolls up, as tag does."""
    make_task(index, level="document", docs=corpus(n_docs=12, per_doc=3))
    assert invoke("train", "topic").exit_code == 0
    call = fake.calls[0]
    assert all(ex.parts and len(ex.parts) == 3 for ex in call["train"])
    gold = tmp_path / "gold.csv"  # documents the model was trained on: it knows their chunks
    trained = sorted({ex.group for ex in call["train"]})
    rows = [index.one("select path from documents where id = ?", [d])["path"] for d in trained]
    values = {ex.group: ex.value for ex in call["train"]}
    gold.write_text("path,label\n" + "".join(f"{p},{values[d]}\n" for p, d in zip(rows, trained)))
    out = json.loads(invoke("eval", "topic", "--file", gold, "--json").stdout)
    assert out["examples"] == len(trained)
    assert out["metrics"]["accuracy"] == 1.0  # the joined text alone would get the default


# -- beginner QA: too little data, unmeasured or useless models, --resume, --method -------
def active_version(index, name="topic"):
    return index.scalar("select m.version from tasks t join models m "
                        "on m.id = t.active_model_id where t.name = ?", [name])


def one_document_each(n_labels_rows):
    """One document per (text, label): the QA's CSV import, each row its own text."""
    return {f"row{i}": [row] for i, row in enumerate(n_labels_rows)}


def test_one_example_per_label_is_refused_before_training(fake, index, invoke, index_path):
    make_task(index, name="tiny", labels=("legal", "medical", "financial"),
              docs=one_document_each([("a licence agreement", "legal"),
                                      ("normal vital signs", "medical"),
                                      ("revenue increased", "financial")]))
    result = invoke("train", "tiny")
    assert result.exit_code == 1
    assert ("Error: too few examples to train on: 'legal' (1), 'medical' (1), "
            "'financial' (1); each label needs at least 2") in result.output
    assert "Label at least 1 more of each (3 more in all)" in result.output
    assert "--allow-few-examples" in result.output
    assert "Warning" not in result.output  # one clear line, not a wall of warnings
    assert not fake.calls and index.scalar("select count(*) from models") == 0
    assert not (index_path / "models" / "tiny").exists()


def test_allow_few_examples_trains_an_unmeasured_first_model(fake, index, invoke):
    make_task(index, name="tiny", labels=("legal", "medical", "financial"),
              docs=one_document_each([("a licence agreement", "legal"),
                                      ("normal vital signs", "medical"),
                                      ("revenue increased", "financial")]))
    result = invoke("train", "tiny", "--allow-few-examples")
    assert result.exit_code == 0, result.output
    assert "Warning: few examples for 'legal' (1)" in result.stderr
    assert "NO HELD-OUT EVALUATION: too few labelled examples" in result.stderr
    assert ("Trained tiny v1 (head from fake-base)" in result.stdout
            and "; it is now active, but its quality is UNMEASURED: no held-out evaluation "
                "(too few labelled examples or documents to keep some aside" in result.stdout)
    assert "Label more examples, from several documents, and train again" in result.stdout
    assert active_version(index, "tiny") == 1


def test_an_unmeasured_version_does_not_replace_a_measured_active_one(fake, index, invoke):
    make_task(index, docs=corpus())
    assert invoke("train", "topic").exit_code == 0
    result = invoke("train", "topic", "--eval-fraction", "0")
    assert result.exit_code == 0, result.output
    assert "NO HELD-OUT EVALUATION: --eval-fraction is 0" in result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Trained topic v2 (head from fake-base) in ")
    assert lines[0].endswith("; v1 stays active: v2 has no held-out score (--eval-fraction "
                             "is 0) and v1 has one (macro_f1 0.500).")
    assert lines[1] == "To use v2 anyway: doctagger models use topic 2"
    assert active_version(index) == 1
    assert [r["version"] for r in json.loads(invoke("models", "topic", "--json").stdout)] == [1, 2]
    card = (Path(json.loads(invoke("models", "show", "topic", "2", "--json").stdout)["path"])
            / "README.md").read_text()
    assert ("No held-out evaluation (it was trained with --eval-fraction 0): its quality is "
            "unknown.") in card
    out = json.loads(invoke("train", "topic", "--eval-fraction", "0", "--json").stdout)
    assert out["active"] is False and out["version"] == 3
    assert out["activation"] == {"reason": "unmeasured", "learned_nothing": False,
                                 "unmeasured": "--eval-fraction is 0",
                                 "previous": {"version": 1, "headline": {
                                     "metric": "macro_f1", "value": 0.5}},
                                 "lower_than_previous": False, "go_back": None}
    # the command the output names does switch
    used = invoke("models", "use", "topic", "2")
    assert used.exit_code == 0 and used.stdout.strip() == "topic: v2 is now active (was v1)."


def test_an_unmeasured_version_replaces_an_unmeasured_one(fake, index, invoke):
    make_task(index, docs={"only": [("one a", "a"), ("two a", "a"), ("one b", "b"),
                                    ("two b", "b")]})
    assert invoke("train", "topic").exit_code == 0
    result = invoke("train", "topic")
    assert result.exit_code == 0, result.output
    assert ("; it is now active (replacing v1), but its quality is UNMEASURED"
            in result.stdout)
    assert active_version(index) == 2


def majority_only(labels=("a", "b", "c"), support=(4, 3, 3)):
    """classification_report-style metrics of a model that says labels[0] for everything."""
    n = sum(support)
    matrix = [[s] + [0] * (len(labels) - 1) for s in support]
    per = {label: {"precision": support[0] / n if i == 0 else 0.0,
                   "recall": 1.0 if i == 0 else 0.0, "f1": 0.5 if i == 0 else 0.0,
                   "support": s} for i, (label, s) in enumerate(zip(labels, support))}
    return {"accuracy": support[0] / n, "macro_f1": 0.19, "per_label": per,
            "confusion_matrix": matrix, "labels": list(labels), "n": n, "multi_label": False}


def three_label_corpus():
    return {f"doc{d}": [(f"document {d} passage {i} about {'abc'[d % 3]}", "abc"[d % 3])
                        for i in range(3)] for d in range(15)}


def test_a_model_that_predicts_one_class_is_flagged_and_keeps_a_better_active_one(
        fake, index, invoke):
    make_task(index, labels=("a", "b", "c"), docs=three_label_corpus())
    fake.metrics = majority_only()
    first = invoke("train", "topic")
    assert first.exit_code == 0, first.output
    warning = ("Warning: the model predicts only 'a' on the held-out set: it has not learned "
               "'b' and 'c' (recall 0); label more examples of them with 'doctagger label "
               "topic --strategy uncertain', or train longer (a higher --epochs)")
    assert warning in first.stderr
    # nothing was active: it becomes active, saying it learned nothing
    assert "; it is now active, but it learned nothing (see the warning above)." in first.stdout
    assert active_version(index) == 1
    fake.metrics = {"macro_f1": 0.9, "accuracy": 0.9}
    second = invoke("train", "topic")
    assert "it is now active (replacing v1)." in second.stdout and active_version(index) == 2
    fake.metrics = majority_only()
    third = invoke("train", "topic", "--json")
    assert third.exit_code == 0, third.output
    out = json.loads(third.stdout)
    assert out["active"] is False and out["activation"]["reason"] == "learned-nothing"
    assert out["activation"]["learned_nothing"] is True
    assert any(w.startswith("the model predicts only 'a'") for w in out["warnings"])
    assert active_version(index) == 2
    text = invoke("train", "topic")
    assert ("; v2 stays active: v4 learned nothing (see the warning above) and v2 scores "
            "better on its own held-out set (macro_f1 0.900 against macro_f1 0.190)."
            in text.stdout)
    assert "To use v4 anyway: doctagger models use topic 4" in text.stdout
    meta = json.loads(index.one("select info from models where version = 4")["info"])
    assert meta["learned_nothing"] is True
    assert any("predicts only 'a'" in w for w in meta["warnings"])  # also in the model card


def test_a_useless_model_replaces_a_worse_one(fake, index, invoke):
    make_task(index, labels=("a", "b", "c"), docs=three_label_corpus())
    fake.metrics = {"macro_f1": 0.1}
    assert invoke("train", "topic").exit_code == 0
    fake.metrics = majority_only()
    result = invoke("train", "topic")
    assert "it is now active (replacing v1), but it learned nothing" in result.stdout
    assert active_version(index) == 2


class FakeTagger(FakeClassifier):
    """A span task type that learns nothing: it reports held-out entity F1 0."""

    name = "fakespans"
    value_kind = "spans"
    methods = ("auto", "finetune")

    def validate(self, task, value):
        return value

    def train(self, task, train, evaluation, options, output_dir):
        self.calls.append({"train": list(train), "eval": list(evaluation), "options": options})
        (Path(output_dir) / "model.json").write_text("{}")
        support = sum(len(ex.value) for ex in evaluation)
        return TrainResult(metrics={
            "precision": 0.0, "recall": 0.0, "f1": 0.0, "macro_f1": 0.0, "accuracy": 0.8,
            "per_type": {"PER": {"precision": 0.0, "recall": 0.0, "f1": 0.0,
                                 "support": support}}, "n": len(evaluation)},
            info={"method": "finetune", "base_model": "fake-base"})


@pytest.fixture
def tagger(monkeypatch, register_plugin):
    monkeypatch.setenv("DOCTAGGER_LOAD_PLUGINS", "")
    task_type = FakeTagger()
    register_plugin(FakePlugin(task_type), "fake-tagger")
    return task_type


def span_corpus(n_docs=10):
    return {f"doc{d}": [(f"Ann met Bob {d}.{i}", [{"start": 0, "end": 3, "label": "PER"}])
                        for i in range(2)] for d in range(n_docs)}


def test_an_ner_model_that_finds_no_entity_is_flagged(tagger, index, invoke):
    make_task(index, name="ents", labels=("PER",), docs=span_corpus(), type_="fakespans")
    result = invoke("train", "ents", "--epochs", "1")
    assert result.exit_code == 0, result.output
    assert "Warning: the model found none of the" in result.stderr
    assert ("entities of the held-out set (entity F1 0.000): it has not learned to recognise "
            "'PER' yet; train longer") in result.stderr
    assert "it is now active, but it learned nothing" in result.stdout


def test_an_unsupported_method_is_refused_before_any_work(tagger, index, invoke, index_path):
    make_task(index, name="ents", labels=("PER", "ORG"), docs=span_corpus(), type_="fakespans")
    result = invoke("train", "ents", "--method", "head")  # ORG has no example: checked later
    assert result.exit_code == 1
    assert result.output == ("Error: --method head is not available for fakespans tasks; use "
                             "--method auto or finetune (or leave it out)\n")
    assert not tagger.calls and not (index_path / "models" / "ents").exists()


def test_the_ner_plugin_offers_finetune_only():
    from doctagger_ner.tasktype import NERTaskType

    from doctagger.errors import InvalidInputError
    from doctagger.tasktypes import Task, TrainOptions
    from doctagger.train import check_options

    ner = Task(name="ents", type="ner", labels=["PER"])
    check_options(TrainOptions(method="finetune"), ner, NERTaskType())
    with pytest.raises(InvalidInputError, match="--method head is not available for ner tasks"):
        check_options(TrainOptions(method="head"), ner, NERTaskType())


def interrupt(fake, invoke, *args):
    fake.fail_with = KeyboardInterrupt()
    result = invoke("train", "topic", *args)
    assert result.exit_code == 1 and "interrupted" in result.output
    fake.fail_with = None


def test_resume_reuses_the_interrupted_runs_options(fake, index, invoke):
    make_task(index, docs=corpus())
    interrupt(fake, invoke, "--method", "finetune", "--epochs", "6", "--max-length", "64")
    result = invoke("train", "topic", "--resume", "--json")
    assert result.exit_code == 0, result.output
    assert ("Resuming topic: finetune, epoch 2 of 6, --max-length 64, --seed 42, "
            "--eval-fraction 0.2 (from checkpoint-3 of the interrupted run; options not "
            "given again are the run's).") in result.stderr
    options = fake.calls[-1]["options"]
    assert (options.method, options.epochs, options.max_length) == ("finetune", 6.0, 64)
    assert fake.calls[-1]["resumed"].endswith("checkpoint-3")
    out = json.loads(result.stdout)
    assert out["method"] == "finetune"
    params = json.loads(index.one("select params from models")["params"])
    assert params["epochs"] == 6.0 and params["max_length"] == 64


def test_resume_refuses_options_that_contradict_the_checkpoint(fake, index, invoke):
    make_task(index, docs=corpus())
    interrupt(fake, invoke, "--method", "finetune", "--epochs", "6", "--max-length", "64")
    result = invoke("train", "topic", "--resume", "--method", "head", "--max-length", "128")
    assert result.exit_code == 1
    assert result.output == (
        "Error: cannot resume topic with --method head (the interrupted run had finetune), "
        "--max-length 128 (the interrupted run had 64): leave them out to resume that run, or "
        "train without --resume to start afresh\n")
    result = invoke("train", "topic", "--resume", "--seed", "7")
    assert result.exit_code == 1 and "--seed 7 (the interrupted run had 42)" in result.output
    result = invoke("train", "topic", "--resume", "--epochs", "2")
    assert result.exit_code == 1
    assert "already trained 2 epochs: give --epochs above 2" in result.output
    assert len(fake.calls) == 1  # none of them trained
    # the same values given again, and a higher --epochs, resume
    result = invoke("train", "topic", "--resume", "--method", "finetune", "--seed", "42",
                    "--epochs", "8")
    assert result.exit_code == 0, result.output
    assert "epoch 2 of 8" in result.stderr and "--epochs 8 (was 6)" in result.stderr
    assert fake.calls[-1]["options"].epochs == 8.0
    assert fake.calls[-1]["options"].max_length == 64


def test_resume_keeps_allow_few_examples(fake, index, invoke):
    """QA: '--resume' forgot --allow-few-examples and refused the run it had started."""
    make_task(index, labels=("a", "b", "c"), docs={**corpus(), "one": [("only c", "c")]})
    interrupt(fake, invoke, "--allow-few-examples", "--epochs", "6")
    result = invoke("train", "topic", "--resume")
    assert result.exit_code == 0, result.output
    assert ("Resuming topic: auto, epoch 2 of 6, --seed 42, --eval-fraction 0.2, "
            "--allow-few-examples (from checkpoint-3") in result.stderr
    assert "Warning: few examples for 'c' (1)" in result.stderr
    assert fake.calls[-1]["resumed"].endswith("checkpoint-3")
    # without an interrupted run to take it from, it is needed again, and the error says so
    result = invoke("train", "topic", "--resume")
    assert result.exit_code == 1
    assert "Error: too few examples to train on: 'c' (1)" in result.output
    assert "pass --allow-few-examples" in result.output


def test_a_lower_score_replaces_the_active_version_and_says_so(fake, index, invoke):
    """QA: a much worse retrain printed only "it is now active (replacing v3)"."""
    make_task(index, labels=("a", "b", "c"), docs=three_label_corpus())
    fake.metrics = {"macro_f1": 0.746, "accuracy": 0.8}
    assert invoke("train", "topic").exit_code == 0
    fake.metrics = {"macro_f1": 0.8, "accuracy": 0.8}
    better = invoke("train", "topic", "--json")
    assert json.loads(better.stdout)["activation"]["lower_than_previous"] is False
    assert json.loads(better.stdout)["activation"]["go_back"] is None
    fake.metrics = {"macro_f1": 0.387, "accuracy": 0.0}
    result = invoke("train", "topic")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].endswith("; it is now active (replacing v2).")
    assert lines[1] == ("v3 scores 0.387 macro_f1 against v2's 0.800 (on different held-out "
                        "sets); to go back: doctagger models use topic 2")
    assert active_version(index) == 3  # the policy stands: a new version is not held back
    out = json.loads(invoke("train", "topic", "--json").stdout)  # 0.387 again: not lower
    assert out["activation"]["lower_than_previous"] is False
    fake.metrics = {"macro_f1": 0.2, "accuracy": 0.0}
    out = json.loads(invoke("train", "topic", "--json").stdout)
    assert out["active"] and out["activation"]["reason"] == "replaced"
    assert out["activation"]["previous"] == {"version": 4, "headline": {
        "metric": "macro_f1", "value": 0.387}}
    assert out["activation"]["lower_than_previous"] is True
    assert out["activation"]["go_back"] == "doctagger models use topic 4"


def test_resume_with_no_checkpoint_trains_afresh_with_the_options_given(fake, index, invoke):
    """Interrupted before its first checkpoint (or a head run, which writes none): there is
    nothing to resume, so the interrupted run's options neither bind nor carry over."""
    make_task(index, docs=corpus())
    fake.before_checkpoint = True
    fake.fail_with = KeyboardInterrupt()
    result = invoke("train", "topic", "--method", "head", "--max-length", "64")
    assert result.exit_code == 1
    assert "it stopped before its first checkpoint, so 'doctagger train topic' starts it " \
           "again" in result.output and "--resume' continues" not in result.output
    fake.fail_with, fake.before_checkpoint = None, False
    result = invoke("train", "topic", "--resume", "--method", "finetune")
    assert result.exit_code == 0, result.output
    assert "Nothing to resume" in result.stderr and "cannot resume" not in result.output
    options = fake.calls[-1]["options"]
    assert options.method == "finetune" and options.max_length != 64


def test_resume_of_an_older_run_folder_keeps_working(fake, index, invoke, index_path):
    """Checkpoints left by an older doctagger: run.json without the options."""
    make_task(index, docs=corpus())
    interrupt(fake, invoke, "--epochs", "6")
    marker = index_path / "models" / "topic" / ".checkpoints" / "run.json"
    run = json.loads(marker.read_text())
    del run["options"]
    marker.write_text(json.dumps(run))
    result = invoke("train", "topic", "--resume", "--epochs", "6")
    assert result.exit_code == 0, result.output
    assert "Resuming topic: auto, epoch 2 of 6" in result.stderr


def test_held_out_line_shows_the_interval_and_calibration_error():
    from doctagger.cli.train import _metric_line

    line = _metric_line({"macro_f1": 0.8, "accuracy": 0.82, "macro_f1_interval": [0.71, 0.88],
                         "calibration_error": 0.043})
    assert line == ("macro_f1 0.800, accuracy 0.820; macro_f1 95% interval 0.710-0.880; "
                    "calibration error 0.043")
    assert _metric_line({"f1": 0.5}) == "f1 0.500"  # NER: neither
