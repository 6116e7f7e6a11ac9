"""doctagger.datacheck: the guide's pitfalls as warnings, and the refusals."""
from __future__ import annotations

import pytest

from doctagger.datacheck import check_data, require_trainable
from doctagger.errors import TrainingError
from doctagger.tasktypes import Example, Task


def task(labels=("a", "b"), multi_label=False, type_="classification"):
    return Task(name="topic", type=type_, labels=list(labels), multi_label=multi_label)


def examples(counts, start=0):
    out = []
    for label, n in counts.items():
        out += [Example(text=f"{label} text {start + i}", value=label, group=i) for i in range(n)]
    return out


def test_clean_data_has_no_warnings():
    report = check_data(task(), examples({"a": 20, "b": 15}))
    assert report.warnings == [] and report.problems == []
    assert report.label_counts == {"a": 20, "b": 15} and report.n_examples == 35
    require_trainable(report)


def test_few_examples_warning():
    report = check_data(task(), examples({"a": 20, "b": 4}))
    assert len(report.warnings) == 1
    assert report.warnings[0].startswith("few examples for 'b' (4): fewer than 10")
    assert "doctagger label topic --strategy uncertain" in report.warnings[0]


def test_imbalance_warning():
    report = check_data(task(), examples({"a": 230, "b": 20}))
    assert report.warnings == ["labels are imbalanced 230:20 ('a' vs 'b'): the loss is "
                               "weighted to compensate, but labelling more 'b' helps most"]
    assert check_data(task(), examples({"a": 200, "b": 20})).warnings == []  # 10:1 is fine


def test_duplicates_and_conflicts():
    data = examples({"a": 12, "b": 12})
    data.append(Example(text="a  text 0", value="a", group=99))  # same words, same label
    data.append(Example(text="b text 1", value="a", group=98))  # same text, other label
    report = check_data(task(), data)
    assert report.duplicates == 1 and report.conflicts == 1
    assert report.warnings[0].startswith('1 duplicate text (e.g. "a text 0")')
    assert report.warnings[1].startswith('1 text is labelled differently in different places '
                                         '(e.g. "b text 1" as \'a\' and \'b\')')


def test_refuses_no_examples():
    report = check_data(task(), [])
    with pytest.raises(TrainingError, match="has no labelled examples yet: label some with "
                                            "'doctagger label topic'"):
        require_trainable(report)


def test_a_label_without_examples_is_too_few_like_one_with_one():
    """QA: after 'tasks add-labels', --allow-few-examples still refused, and the refusals
    said "label at least 10" here and "at least 2" there. One rule: fewer than 2, none
    included, is refused unless allowed; allowed, a warning names the unseen labels."""
    report = check_data(task(("a", "b", "c", "d")), examples({"a": 12, "b": 12}))
    assert report.label_counts == {"a": 12, "b": 12, "c": 0, "d": 0}
    assert report.problems == [report.too_few]
    assert report.too_few == (
        "too few examples to train on: 'c' (0), 'd' (0); each label needs at least 2, one to "
        "learn from and one to test the model on. Label at least 2 more of each (4 more in "
        "all) with 'doctagger label topic' or 'doctagger import topic FILE' (the guide "
        "advises 100+ per label), or pass --allow-few-examples for a smoke test whose "
        "quality cannot be measured (a label with no example is never predicted)")
    with pytest.raises(TrainingError, match="too few examples to train on: 'c' \\(0\\)"):
        require_trainable(report)
    require_trainable(report, allow_few=True)
    assert ("no examples for 'c', 'd': the model can never predict a label it has not seen; "
            "label at least 2 with 'doctagger label topic' and train again") in report.warnings
    mixed = check_data(task(("a", "b", "c")), examples({"a": 12, "b": 1}))
    assert mixed.too_few.startswith("too few examples to train on: 'b' (1), 'c' (0); each "
                                    "label needs at least 2")
    assert "Label at least 1 more 'b', 2 more 'c' with" in mixed.too_few
    for message in mixed.problems + mixed.warnings:  # one number for "enough to train"
        assert "at least 10" not in message


def test_refuses_a_single_class():
    report = check_data(task(("a",)), examples({"a": 12}))
    with pytest.raises(TrainingError, match="examples of only one class"):
        require_trainable(report)


def test_multi_label_and_spans_count_each_label():
    multi = [Example(text=f"t{i}", value=["a", "b"] if i % 2 else ["a"]) for i in range(24)]
    report = check_data(task(multi_label=True), multi)
    assert report.label_counts == {"a": 24, "b": 12} and not report.problems
    one_type = task(("PER",), type_="ner")
    spans = [Example(text=f"Ann met Bob {i}", value=[{"start": 0, "end": 3, "label": "PER"},
                                                     {"start": 8, "end": 11, "label": "PER"}])
             for i in range(6)] + [Example(text="nothing here", value=[])]
    report = check_data(one_type, spans)
    assert report.label_counts == {"PER": 12} and not report.problems  # one type is fine
    report = check_data(one_type, [Example(text="nothing", value=[])])
    with pytest.raises(TrainingError, match="task 'topic' has no labelled entity yet"):
        require_trainable(report)
    report = check_data(task(("PER", "ORG"), type_="ner"), spans)
    assert "few entities" not in " ".join(report.warnings)
    assert report.problems and "'ORG'" in report.problems[0]


def test_refuses_labels_below_two_examples_unless_allowed():
    report = check_data(task(("a", "b", "c")), examples({"a": 12, "b": 1, "c": 1}))
    assert report.problems == [report.too_few]
    assert report.too_few.startswith("too few examples to train on: 'b' (1), 'c' (1); each "
                                     "label needs at least 2, one to learn from and one to "
                                     "test the model on. Label at least 1 more of each (2 "
                                     "more in all) with 'doctagger label topic'")
    with pytest.raises(TrainingError, match="too few examples to train on"):
        require_trainable(report)
    require_trainable(report, allow_few=True)
    assert any(w.startswith("few examples for 'b' (1), 'c' (1)") for w in report.warnings)
    one = check_data(task(), examples({"a": 12, "b": 1}))
    assert "Label at least 1 more 'b' with" in one.too_few
    assert check_data(task(), examples({"a": 2, "b": 2})).too_few is None


def test_allow_few_does_not_lift_the_other_refusals():
    report = check_data(task(("a", "b", "c")), examples({"a": 12}))
    assert len(report.problems) == 2  # one class only; 'b' and 'c' too few
    with pytest.raises(TrainingError, match="examples of only one class"):
        require_trainable(report, allow_few=True)
    spans = check_data(task(("PER",), type_="ner"), [Example(text="nothing", value=[])])
    with pytest.raises(TrainingError, match="no labelled entity yet"):
        require_trainable(spans, allow_few=True)


def test_too_few_entities_counts_spans():
    spans = [Example(text="Ann met Bob", value=[{"start": 0, "end": 3, "label": "PER"}])]
    report = check_data(task(("PER",), type_="ner"), spans)
    assert report.too_few.startswith("too few entities to train on: 'PER' (1)")


# -- after training: did it learn anything? ---------------------------------------------
def scores(recalls: dict, matrix=None, multi=False):
    per = {label: {"precision": r, "recall": r, "f1": r, "support": 5}
           for label, r in recalls.items()}
    out = {"macro_f1": sum(recalls.values()) / len(recalls), "per_label": per,
           "labels": list(recalls), "multi_label": multi}
    if matrix is not None:
        out["confusion_matrix"] = matrix
    return out


def test_a_classifier_that_predicts_one_class_learned_nothing():
    from doctagger.datacheck import check_learning

    metrics = scores({"neutral": 1.0, "positive": 0.0, "negative": 0.0},
                     matrix=[[5, 0, 0], [5, 0, 0], [5, 0, 0]])
    warnings, nothing = check_learning(task(("neutral", "positive", "negative")), metrics,
                                       "class")
    assert nothing and warnings == [
        "the model predicts only 'neutral' on the held-out set: it has not learned "
        "'positive' and 'negative' (recall 0); label more examples of them with 'doctagger "
        "label topic --strategy uncertain', or train longer (a higher --epochs)"]
    # without a confusion matrix it can only say what it recognises
    warnings, nothing = check_learning(task(("a", "b")), scores({"a": 0.8, "b": 0.0}),
                                       "class")
    assert nothing and warnings[0].startswith("the model recognises only 'a' on the held-out")


def test_a_classifier_that_misses_one_label_gets_a_warning_only():
    from doctagger.datacheck import check_learning

    metrics = scores({"a": 0.8, "b": 0.6, "c": 0.0})
    warnings, nothing = check_learning(task(("a", "b", "c")), metrics, "class")
    assert not nothing
    assert warnings == ["the model never recognises 'c' on the held-out set (recall 0): label "
                        "more examples of them with 'doctagger label topic --strategy "
                        "uncertain', or train longer (a higher --epochs)"]
    assert check_learning(task(), scores({"a": 0.8, "b": 0.6}), "class") == ([], False)
    # no per-label scores (or no held-out example of any label): nothing to say
    assert check_learning(task(), {"macro_f1": 0.0}, "class") == ([], False)
    assert check_learning(task(), {}, "class") == ([], False)


def test_multi_label_learned_nothing_only_when_it_recognises_none():
    from doctagger.datacheck import check_learning

    t = task(multi_label=True)
    assert check_learning(t, scores({"a": 0.0, "b": 0.0}, multi=True), "classes")[1]
    warnings, nothing = check_learning(t, scores({"a": 0.7, "b": 0.0}, multi=True), "classes")
    assert not nothing and warnings[0].startswith("the model never recognises 'b'")


def test_an_ner_model_with_entity_f1_zero_learned_nothing():
    from doctagger.datacheck import check_learning

    t = task(("PER", "ORG"), type_="ner")
    zero = {"f1": 0.0, "per_type": {"PER": {"precision": 0.0, "recall": 0.0, "f1": 0.0,
                                            "support": 7},
                                    "ORG": {"precision": 0.0, "recall": 0.0, "f1": 0.0,
                                            "support": 3}}}
    warnings, nothing = check_learning(t, zero, "spans")
    assert nothing and warnings[0].startswith(
        "the model found none of the 10 entities of the held-out set (entity F1 0.000): it "
        "has not learned to recognise 'PER' and 'ORG' yet; train longer")
    some = {"f1": 0.5, "per_type": {"PER": {"recall": 0.7, "support": 7},
                                    "ORG": {"recall": 0.0, "support": 3}}}
    warnings, nothing = check_learning(t, some, "spans")
    assert not nothing and warnings[0].startswith(
        "the model finds no 'ORG' entity of the held-out set (recall 0)")
    # no entity on either side: seqeval's empty per_type, nothing to judge
    assert check_learning(t, {"f1": 0.0, "per_type": {}}, "spans") == ([], False)
