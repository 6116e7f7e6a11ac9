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


def test_refuses_a_label_without_examples():
    report = check_data(task(("a", "b", "c", "d")), examples({"a": 12, "b": 12}))
    with pytest.raises(TrainingError, match="labels 'c', 'd' of task 'topic' have no example"):
        require_trainable(report)
    assert report.label_counts == {"a": 12, "b": 12, "c": 0, "d": 0}


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
    with pytest.raises(TrainingError, match="label 'PER' of task 'topic' has no example"):
        require_trainable(report)
    report = check_data(task(("PER", "ORG"), type_="ner"), spans)
    assert "few entities" not in " ".join(report.warnings)
    assert report.problems and "'ORG'" in report.problems[0]
