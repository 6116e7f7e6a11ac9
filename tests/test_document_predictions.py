"""Models that read a whole document (doctagger.document_predictions): tag, eval and the
roll-up take the document's own prediction, not the mean of its chunks'."""
from __future__ import annotations

import json

import pytest

from doctagger.hookspecs import hookimpl
from doctagger.index import Index
from doctagger.tasktypes import Prediction, TaskType, TrainResult

LABELS = ["hosting", "service"]


class TitlePredictor:
    """A chunk: its keyword counts. A document: the label its first line names (as a
    contract's title does), whatever its other chunks say."""

    documents: list = []

    def __init__(self, task):
        self.task = task

    def predict(self, texts):
        out = []
        for text in texts:
            low = text.casefold()
            raw = {lab: low.count(lab) + 0.1 for lab in self.task.labels}
            total = sum(raw.values())
            scores = {lab: v / total for lab, v in raw.items()}
            best = max(scores, key=scores.get)
            out.append(Prediction(best, scores[best], scores))
        return out

    def predict_documents(self, documents):
        TitlePredictor.documents.append([list(d) for d in documents])
        return self.predict([d[0].splitlines()[0] if d else "" for d in documents])


class TitleType(TaskType):
    name = "titleclass"
    value_kind = "class"
    levels = ("chunk", "document")
    reads = "whole text"

    def check_labels(self, labels, *, multi_label, level):
        pass

    def validate(self, task, value):
        return value

    def train(self, task, train, evaluation, options, output_dir):
        (output_dir / "model.txt").write_text("title")
        info = {"method": "title", "base_model": "none"}
        if TitleType.reads:
            info["document_prediction"] = TitleType.reads
        return TrainResult(metrics={"accuracy": 1.0}, info=info)

    def load(self, task, model_dir):
        return TitlePredictor(task)

    def evaluate(self, task, examples, predictions):
        correct = sum(1 for ex, p in zip(examples, predictions) if ex.value == p.value)
        return {"accuracy": correct / len(examples)}


class Plugin:
    @hookimpl
    def register_task_types(self, register):
        register(TitleType)


@pytest.fixture
def corpus(tmp_path, invoke, monkeypatch, register_plugin):
    monkeypatch.setenv("DOCTAGGER_LOAD_PLUGINS", "")
    register_plugin(Plugin(), "title-plugin")
    TitlePredictor.documents = []
    TitleType.reads = "whole text"
    folder = tmp_path / "docs"
    folder.mkdir()
    filler = "\n\n".join(f"The service levels of section {i} apply to every service "
                         f"the provider gives." for i in range(6))
    (folder / "hosting.txt").write_text("HOSTING AGREEMENT\n\n" + filler)
    (folder / "service.txt").write_text("SERVICE AGREEMENT\n\n" + filler)
    (folder / "labels.csv").write_text("path,label\nhosting.txt,hosting\nservice.txt,service\n")
    assert invoke("ingest", folder, "--chunk-tokens", "16").exit_code == 0
    assert invoke("tasks", "create", "kind", "--type", "titleclass", "--level", "document",
                  "--labels", ",".join(LABELS)).exit_code == 0
    assert invoke("import", "kind", folder / "labels.csv").exit_code == 0
    return folder


@pytest.fixture
def trained(invoke, corpus):
    result = invoke("train", "kind", "--allow-few-examples")
    assert result.exit_code == 0, result.output
    return corpus


def _tags(index_path):
    with Index(index_path) as index:
        return {r["path"].rsplit("/", 1)[-1]: (r["label"], r["extra"]) for r in index.query(
            "select d.path, g.label, g.extra from document_tags g join documents d on "
            "d.id = g.document_id order by d.path")}


def test_tag_takes_the_document_prediction(invoke, trained, index_path):
    result = invoke("tag", "kind", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["documents_predicted"] == 2
    tags = _tags(index_path)
    # the mean of the chunks would say "service" for both: five chunks of boilerplate
    assert {name: label for name, (label, _) in tags.items()} == {
        "hosting.txt": "hosting", "service.txt": "service"}
    assert json.loads(tags["hosting.txt"][1])["aggregate"] == "document prediction"
    # every chunk of a document, in order, reached predict_documents
    seen = [doc for call in TitlePredictor.documents for doc in call]
    assert any(doc[0].startswith("HOSTING AGREEMENT") and len(doc) > 3 for doc in seen)
    with Index(index_path) as index:
        assert index.scalar("select count(*) from document_predictions") == 2
    shown = invoke("show", "hosting.txt")
    assert "kind=hosting" in shown.output


def test_eval_scores_what_tag_writes(invoke, trained):
    result = invoke("eval", "kind", "--file", trained / "labels.csv", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["metrics"]["accuracy"] == 1.0


def test_a_model_that_does_not_read_documents_rolls_chunks_up(invoke, corpus, index_path):
    TitleType.reads = None
    assert invoke("train", "kind", "--allow-few-examples").exit_code == 0
    assert invoke("tag", "kind").exit_code == 0
    assert {label for label, _ in _tags(index_path).values()} == {"service"}
    with Index(index_path) as index:
        assert index.scalar("select count(*) from document_predictions") == 0
    result = invoke("eval", "kind", "--file", corpus / "labels.csv", "--json")
    assert json.loads(result.stdout)["metrics"]["accuracy"] == 0.5


def test_a_changed_document_loses_its_document_prediction(invoke, trained, index_path):
    assert invoke("tag", "kind").exit_code == 0
    (trained / "hosting.txt").write_text("SERVICE AGREEMENT\n\nNow it is about a service.")
    assert invoke("ingest", trained, "--chunk-tokens", "16").exit_code == 0
    with Index(index_path) as index:
        assert index.scalar("select count(*) from document_predictions") == 1
    assert invoke("tag", "kind").exit_code == 0
    assert _tags(index_path)["hosting.txt"][0] == "service"


def test_a_lost_roll_up_is_made_with_the_document_prediction(invoke, trained, index_path):
    """Predictions written, then the process died before the roll-up: the next tag rolls
    those documents up, predicting them as documents first."""
    assert invoke("tag", "kind").exit_code == 0
    with Index(index_path) as index:
        with index.write() as db:
            db.execute("delete from document_tags")
            db.execute("delete from document_predictions")
        model = index.one("select id from models")
    from doctagger.tagging import RUNS_DIR

    # the marker a killed run leaves (pid 999999999: no such process)
    (index_path / RUNS_DIR / f"model-{model['id']}-999999999.running").touch()
    result = invoke("tag", "kind", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["documents"] == 2 and summary["documents_predicted"] == 2
    assert {name: label for name, (label, _) in _tags(index_path).items()} == {
        "hosting.txt": "hosting", "service.txt": "service"}
