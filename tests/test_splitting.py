"""doctagger.splitting: stratified, grouped, deterministic held-out splits."""
from __future__ import annotations

from collections import Counter

from doctagger.splitting import split_examples, split_summary
from doctagger.tasktypes import Example


def corpus(docs):
    """docs: list of (label, n_chunks): each document holds chunks of one label."""
    out = []
    for d, (label, n) in enumerate(docs):
        out += [Example(text=f"doc {d} chunk {i}", value=label, group=d, chunk_id=100 * d + i)
                for i in range(n)]
    return out


def test_no_document_on_both_sides_and_fraction_is_close():
    data = corpus([("a", 3)] * 20 + [("b", 2)] * 20)
    train, evaluation = split_examples(data, 0.2, seed=1)
    assert not {e.group for e in train} & {e.group for e in evaluation}
    assert len(train) + len(evaluation) == len(data)
    counts = Counter(e.value for e in evaluation)
    assert abs(counts["a"] - 12) <= 3 and abs(counts["b"] - 8) <= 2
    assert [e.chunk_id for e in train] == sorted(e.chunk_id for e in train)  # input order


def test_rare_label_gets_an_eval_example_and_keeps_a_training_one():
    data = corpus([("a", 1)] * 40 + [("b", 1)] * 2)
    train, evaluation = split_examples(data, 0.2, seed=3)
    assert Counter(e.value for e in evaluation)["b"] == 1
    assert Counter(e.value for e in train)["b"] == 1


def test_deterministic_for_a_seed_and_different_across_seeds():
    data = corpus([("a", 2)] * 15 + [("b", 2)] * 15)
    first = split_examples(data, 0.2, seed=5)[1]
    assert first == split_examples(data, 0.2, seed=5)[1]
    assert any(split_examples(data, 0.2, seed=s)[1] != first for s in range(6, 12))


def test_duplicate_texts_stay_on_one_side():
    data = corpus([("a", 1)] * 10 + [("b", 1)] * 10)
    copies = [Example(text=e.text, value=e.value, group=1000 + i) for i, e in enumerate(data)]
    train, evaluation = split_examples(data + copies, 0.3, seed=0)
    assert evaluation
    assert not {e.text for e in train} & {e.text for e in evaluation}


def test_tiny_data_or_one_document_gives_no_eval_set():
    assert split_examples(corpus([("a", 1), ("b", 1)]), 0.2, seed=0)[1] == []
    one_doc = [Example(text=f"t{i}", value="ab"[i % 2], group=7) for i in range(20)]
    train, evaluation = split_examples(one_doc, 0.2, seed=0)
    assert evaluation == [] and len(train) == 20
    data = corpus([("a", 1)] * 5 + [("b", 1)] * 5)
    assert split_examples(data, 0, seed=0) == (data, [])


def test_ungrouped_examples_split_one_by_one_and_summary():
    data = [Example(text=f"t{i}", value="ab"[i % 2]) for i in range(10)]
    train, evaluation = split_examples(data, 0.2, seed=0)
    assert Counter(e.value for e in evaluation) == {"a": 1, "b": 1}
    summary = split_summary(train, evaluation)
    assert summary["train"] == 8 and summary["eval"] == 2
    assert summary["eval_label_counts"] == {"a": 1, "b": 1}


def test_multi_label_and_spans_stratify_by_rarest_label():
    data = [Example(text=f"t{i}", value=["a", "c"] if i < 4 else ["a"], group=i)
            for i in range(20)]
    evaluation = split_examples(data, 0.25, seed=0)[1]
    assert any("c" in e.value for e in evaluation)
    spans = [Example(text=f"Ann {i}", value=[{"start": 0, "end": 3, "label": "PER"}] if i % 2
                     else [], group=i) for i in range(20)]
    evaluation = split_examples(spans, 0.2, seed=0)[1]
    assert 3 <= len(evaluation) <= 5 and any(e.value for e in evaluation)


def test_no_label_loses_its_last_training_example_even_when_never_rarest():
    """A multi-label label that is never an example's rarest label is protected too."""
    from doctagger.splitting import split_examples
    from doctagger.tasktypes import Example, value_labels

    values = [["D", "Z"], ["D"], ["E", "Z"], ["E"]]
    for seed in range(20):
        examples = [Example(text=str(i), value=v, group=i) for i, v in enumerate(values)]
        train, evaluation = split_examples(examples, 0.1, seed=seed)
        trained = {lbl for ex in train for lbl in value_labels(ex.value)}
        assert trained == {"D", "E", "Z"}, (seed, [ex.value for ex in evaluation])
