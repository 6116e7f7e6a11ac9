"""The shipped evaluate modules and the scoring helpers built on them (offline)."""
from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest
from sklearn.metrics import f1_score

from doctagger import metrics
from doctagger.errors import NotFoundError
from doctagger.training import classification_scores, load_metric, ner_scores

REPO = Path(__file__).resolve().parents[1]


def test_modules_are_shipped_and_load_by_path_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert metrics.available() == ["classification_report", "seqeval_entities"]
    import evaluate

    module = evaluate.load(str(metrics.metric_path("seqeval_entities")), keep_in_memory=True)
    scores = module.compute(predictions=[["B-X", "O"]], references=[["B-X", "O"]])
    assert scores["f1"] == 1.0
    with pytest.raises(NotFoundError, match="no metric module 'accuracy'"):
        metrics.metric_path("accuracy")


def test_module_imports_are_one_per_line():
    """evaluate copies a module's dependencies by reading its import lines one by one."""
    for name in metrics.available():
        tree = ast.parse((metrics.HERE / name / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                assert len(node.names) == 1, f"{name}.py line {node.lineno}"


def test_package_data_covers_the_modules():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["doctagger.metrics"]
    for name in metrics.available():
        assert any((metrics.HERE).glob(g) for g in globs)
        assert (metrics.HERE / name / f"{name}.py") in {p for g in globs
                                                         for p in metrics.HERE.glob(g)}


def test_classification_scores_match_scikit_learn():
    gold = ["a", "b", "c", "a", "b", "c", "a"]
    pred = ["a", "b", "a", "a", "c", "c", "b"]
    scores = classification_scores(gold, pred, ["a", "b", "c"])
    assert scores["accuracy"] == pytest.approx(4 / 7)
    assert scores["macro_f1"] == pytest.approx(f1_score(gold, pred, average="macro"))
    assert scores["micro_f1"] == pytest.approx(f1_score(gold, pred, average="micro"))
    assert scores["per_label"]["a"] == {"precision": pytest.approx(2 / 3),
                                        "recall": pytest.approx(2 / 3),
                                        "f1": pytest.approx(2 / 3), "support": 3}
    assert scores["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [1, 0, 1]]
    assert scores["labels"] == ["a", "b", "c"] and scores["n"] == 7
    # class ids work the same, and an unknown prediction counts as wrong
    by_id = classification_scores([0, 1, 2, 0, 1, 2, 0], [0, 1, 0, 0, 2, 2, 1], ["a", "b", "c"])
    assert by_id["macro_f1"] == scores["macro_f1"]
    unknown = classification_scores(["a", "b"], ["a", "zzz"], ["a", "b"])
    assert unknown["accuracy"] == 0.5 and unknown["confusion_matrix"] == [[1, 0], [0, 0]]
    assert unknown["per_label"]["b"]["recall"] == 0.0
    with pytest.raises(ValueError, match="2 gold values but 1 predictions"):
        classification_scores(["a", "b"], ["a"], ["a", "b"])


def test_classification_scores_multi_label():
    gold = [["a"], ["a", "b"], ["b"], []]
    pred = [["a"], ["a"], ["b", "c"], []]
    scores = classification_scores(gold, pred, ["a", "b", "c"], multi_label=True)
    assert scores["multi_label"] and scores["accuracy"] == 0.5  # exact match
    assert scores["per_label"]["b"] == {"precision": 1.0, "recall": 0.5,
                                        "f1": pytest.approx(2 / 3), "support": 2}
    assert scores["confusion_matrix"][2] == [[3, 1], [0, 0]]  # c: one false positive
    assert scores["micro_f1"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 1))


def test_ner_scores_need_exact_boundaries_and_type():
    gold = [[{"start": 0, "end": 3, "label": "PER"}, {"start": 8, "end": 14, "label": "LOC"}],
            [{"start": 0, "end": 5, "label": "ORG"}], []]
    pred = [[{"start": 0, "end": 3, "label": "PER"}, {"start": 8, "end": 12, "label": "LOC"}],
            [{"start": 0, "end": 5, "label": "PER"}], [{"start": 2, "end": 4, "label": "PER"}]]
    scores = ner_scores(gold, pred)
    assert scores["precision"] == pytest.approx(1 / 4)
    assert scores["recall"] == pytest.approx(1 / 3)
    assert scores["per_type"]["PER"]["support"] == 1 and scores["per_type"]["LOC"]["f1"] == 0
    assert scores["n"] == 3
    perfect = ner_scores(gold, gold)
    assert perfect["f1"] == 1.0 and perfect["macro_f1"] == 1.0
    assert ner_scores([[]], [[]])["f1"] == 0.0


def test_adjacent_entities_stay_apart():
    one = [{"start": 0, "end": 10, "label": "X"}]
    two = [{"start": 0, "end": 5, "label": "X"}, {"start": 5, "end": 10, "label": "X"}]
    assert metrics.spans_to_tags(one, two) == (["B-X", "I-X"], ["B-X", "B-X"])
    assert ner_scores([two], [one])["f1"] == 0.0


def test_load_metric_is_cached():
    assert load_metric("classification_report") is load_metric("classification_report")
    assert load_metric("classification_report", "multilabel") is not \
        load_metric("classification_report")
