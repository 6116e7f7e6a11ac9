"""What the head method lets the user's labels choose beyond the reading: lexical (TF-IDF)
evidence mixed into its probabilities, and the fit again on every label once measured.

Runs on the tiny random BERT of tests/test_classification.py: its embeddings carry little,
so words that decide the label are left to the lexical part.
"""
from __future__ import annotations

import json
import random

import numpy as np
import pytest

from doctagger.tasktypes import Example, Task, TrainOptions
from doctagger.testing import tiny_bert

LABELS = ["alpha", "beta", "gamma"]
#: one rare word decides the label; the rest is shared filler
KEY = {"alpha": "zebrafish", "beta": "quasar", "gamma": "marmalade"}
FILLER = "the report covers the quarter and the team notes that work goes on".split()


def _examples(per_label=12, seed=0):
    rng = random.Random(seed)
    out = []
    for i in range(per_label):
        for label in LABELS:
            words = rng.sample(FILLER, 8)
            words.insert(rng.randrange(len(words)), KEY[label])
            out.append(Example(text=" ".join(words) + f" item {i}", value=label,
                               group=len(out)))
    return out


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    texts = [e.text for e in _examples()] + list(KEY.values())
    return tiny_bert(tmp_path_factory.mktemp("bert"), texts)


@pytest.fixture
def task_type():
    from doctagger.plugins import get_task_type

    return get_task_type("classification")


def _task():
    return Task(name="kind", type="classification", labels=LABELS, level="chunk", id=1)


def _split(examples):
    return ([e for i, e in enumerate(examples) if i % 4 != 3],
            [e for i, e in enumerate(examples) if i % 4 == 3])


def _options(bert, **extra):
    return TrainOptions(base_model=str(bert), method="head", extra=extra)


def test_lexical_evidence_is_chosen_when_words_decide():
    """Features that carry nothing and words that decide: the mix leans on the words."""
    from doctagger_classification import lexical

    examples = _examples(per_label=15)
    texts = [e.text for e in examples]
    y = [LABELS.index(e.value) for e in examples]
    noise = np.random.default_rng(0).normal(size=(len(texts), 16)).astype("float32")
    choice = lexical.choose(texts, noise, y, head_c=1.0, head_scale=1.0, n_labels=3,
                            groups=[e.group for e in examples], seed=0)
    assert choice.used and choice.mix < 1.0
    assert choice.scores[f"{choice.mix:g}"] > choice.scores["1"] + 0.2
    assert choice.folds == 5
    # the head's own features decide: the head alone is kept (a tie keeps it)
    signal = np.eye(3, dtype="float32")[y] * 5
    assert not lexical.choose(texts, signal, y, head_c=1.0, head_scale=1.0, n_labels=3,
                              seed=0).used
    assert lexical.choose(texts[:6], noise[:6], y[:6], head_c=1.0, head_scale=1.0,
                          n_labels=3) is None  # too few to cross-validate


@pytest.fixture
def mixed(monkeypatch):
    """The head trained with a lexical part whatever the tiny model's scores say."""
    from doctagger_classification import lexical

    monkeypatch.setattr(lexical, "choose", lambda *a, **k: lexical.Choice(
        mix=0.5, c=4.0, temperature=1.3, scores={"1": 0.5, "0.5": 0.9}, folds=5))


def test_the_lexical_part_reloads_as_scikit_learn_rebuilds_it(task_type, bert, tmp_path,
                                                              mixed):
    """The saved terms, idf and weights give, through a plain TfidfVectorizer, the same
    probabilities the predictor returns (what head.USAGE tells users to do)."""
    from safetensors.numpy import load_file
    from sklearn.feature_extraction.text import TfidfVectorizer

    train, evaluation = _split(_examples())
    result = task_type.train(_task(), train, evaluation, _options(bert, refit=False),
                             tmp_path / "m")
    assert result.info["lexical"]["mix"] == 0.5
    assert result.info["hyperparameters"]["lexical_mix"] == 0.5
    assert not list((tmp_path / "m").glob("*.pkl"))
    folder = tmp_path / "m"
    predictor = task_type.load(_task(), folder)
    texts = [e.text for e in evaluation] + ["nothing known here", ""]
    got = predictor.probabilities(texts).numpy()

    config = json.loads((folder / "head.json").read_text())
    lex = json.loads((folder / "lexical.json").read_text())
    tensors = load_file(str(folder / "lexical.safetensors"))
    settings = dict(lex["settings"], ngram_range=tuple(lex["settings"]["ngram_range"]))
    vec = TfidfVectorizer(vocabulary={t: i for i, t in enumerate(lex["terms"])}, **settings)
    vec.idf_ = tensors["idf"].astype("float64")
    z = vec.transform(texts) @ tensors["weight"].T + tensors["bias"]

    def log_softmax(a):
        a = a - a.max(axis=1, keepdims=True)
        return a - np.log(np.exp(a).sum(axis=1, keepdims=True))

    head = load_file(str(folder / "head.safetensors"))
    x = predictor.encoder.embed(texts)
    h = log_softmax(np.asarray(x) @ head["weight"].T + head["bias"])
    w, t = config["lexical"]["mix"], config["lexical"]["temperature"]
    expected = np.exp(log_softmax(t * (w * h + (1 - w) * log_softmax(np.asarray(z)))))
    assert np.allclose(got, expected, atol=1e-5)
    assert np.allclose(got.sum(axis=1), 1.0, atol=1e-5)


def test_no_lexical_part_when_told_or_multi_label(task_type, bert, tmp_path, mixed):
    train, evaluation = _split(_examples())
    result = task_type.train(_task(), train, evaluation,
                             _options(bert, refit=False, lexical=False), tmp_path / "off")
    assert "lexical" not in result.info
    assert not (tmp_path / "off" / "lexical.safetensors").exists()
    multi = Task(name="kind", type="classification", labels=LABELS, level="chunk", id=1,
                 multi_label=True)
    result = task_type.train(multi, [Example(text=e.text, value=[e.value], group=e.group)
                                     for e in train],
                             [Example(text=e.text, value=[e.value], group=e.group)
                              for e in evaluation], _options(bert), tmp_path / "multi")
    assert "lexical" not in result.info


def test_the_head_is_fitted_again_on_every_label_after_measuring(task_type, bert, tmp_path,
                                                                mixed):
    """The held-out score is the measured model's (the same as without the refit); the
    saved model has learned the held-out examples too."""
    train, evaluation = _split(_examples())
    kept = task_type.train(_task(), train, evaluation, _options(bert, refit=False),
                           tmp_path / "kept")
    refit = task_type.train(_task(), train, evaluation, _options(bert), tmp_path / "refit")
    assert refit.metrics == kept.metrics
    assert "refit" not in kept.info
    assert refit.info["refit"]["texts"] == len(train) + len(evaluation)
    from safetensors.numpy import load_file

    before = load_file(str(tmp_path / "kept" / "head.safetensors"))["weight"]
    after = load_file(str(tmp_path / "refit" / "head.safetensors"))["weight"]
    assert not np.allclose(before, after)


def test_eval_of_a_refitted_version_reports_what_was_measured(invoke, bert, tmp_path):
    """``eval`` with no --file cannot measure a refitted version on its held-out examples
    (it learned them): it shows the recorded held-out result and says so; --file warns
    that every labelled example was training data."""
    import csv

    rows = [(e.text, e.value) for e in _examples()]
    path = tmp_path / "labels.csv"
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows([("text", "label"), *rows])
    assert invoke("tasks", "create", "kind", "--type", "classification", "--labels",
                  ",".join(LABELS)).exit_code == 0
    assert invoke("import", "kind", str(path)).exit_code == 0
    trained = invoke("train", "kind", "--method", "head", "--base-model", str(bert),
                     "--json")
    assert trained.exit_code == 0, trained.output
    measured = json.loads(trained.stdout)["metrics"]
    result = invoke("eval", "kind", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["recorded"] is True and "fitted again on all labels" in out["source"]
    assert out["metrics"]["macro_f1"] == measured["macro_f1"]
    again = invoke("eval", "kind", "--file", str(path), "--json")
    assert json.loads(again.stdout)["seen_in_training"] == len(rows)


# -- choosing on few labels ------------------------------------------------------------------
def test_folds_keep_a_documents_chunks_together():
    """Chunks of one document never sit on both sides of a cross-validation fold (they
    made the head's CV score 0.73 where unseen documents scored 0.53)."""
    from doctagger_classification.head import folds_for

    y = np.repeat([0, 1, 2], 12)
    groups = [f"doc{i // 3}" for i in range(len(y))]  # 3 chunks a document
    cv, g, folds = folds_for(y, groups, seed=1)
    assert folds == 4  # 4 documents a class: 4 folds
    for fit_rows, test_rows in cv.split(np.zeros(len(y)), y, g):
        assert not set(g[fit_rows]) & set(g[test_rows])
    assert folds_for(y, None, seed=1)[1] is None  # no groups: plain stratified folds


def test_one_standard_error_keeps_the_default_unless_the_gain_is_clear():
    from doctagger_classification.head import one_standard_error

    noisy = {1.0: [0.70, 0.60, 0.80, 0.65, 0.75], 16.0: [0.80, 0.55, 0.85, 0.60, 0.80]}
    assert one_standard_error(noisy, 1.0, 5) == 1.0  # +0.02 on average, folds disagree
    clear = {1.0: [0.60, 0.62, 0.58, 0.61, 0.59], 16.0: [0.80, 0.83, 0.79, 0.82, 0.81]}
    assert one_standard_error(clear, 1.0, 5) == 16.0
    assert one_standard_error({1.0: [0.5, 0.5], 4.0: [0.4, 0.4]}, 1.0, 2) == 1.0


def test_interval_and_calibration_error():
    from doctagger.metrics.honesty import calibration_error, macro_f1_interval
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    gold = rng.integers(0, 3, 200)
    pred = np.where(rng.random(200) < 0.7, gold, rng.integers(0, 3, 200))
    low, high = macro_f1_interval(list(gold), list(pred), 3)
    assert low < f1_score(gold, pred, average="macro") < high
    assert 0.05 < high - low < 0.25
    # 200 more examples: a narrower interval
    low2, high2 = macro_f1_interval(list(gold) * 2, list(pred) * 2, 3)
    assert high2 - low2 < high - low
    # all 21 right: not [1, 1], but the rule of three's low end
    assert macro_f1_interval([0, 1, 2] * 7, [0, 1, 2] * 7, 3) == [pytest.approx(1 - 3 / 21,
                                                                            abs=1e-4), 1.0]
    assert calibration_error([0.95] * 20, [True] * 19 + [False]) == pytest.approx(0.0)
    assert calibration_error([0.9] * 10, [False] * 10) == pytest.approx(0.9)
