"""--strategy uncertain: ranked by the task type's uncertainty, predicted classes taking
turns, near-duplicates left out; the classification plugin's entropy uncertainty."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from doctagger.selection import rank_by_uncertainty, uncertain_order, why_uncertain
from doctagger.tasktypes import Prediction, Task
from tests.fakes import add_document, add_model, create_task


def pred(value, score=0.5, scores=None):
    return Prediction(value, score, scores)


def pool(spec):
    """{ref: (prediction, uncertainty)} from (ref, predicted value, uncertainty) rows."""
    return {ref: (pred(value), u) for ref, value, u in spec}


def texts(refs, text=None):
    return {ref: SimpleNamespace(text=(text or "unique text number {}").format(ref))
            for ref in refs}


# The plain ranking puts six items predicted A first: the model is torn about A.
SKEWED = pool([(1, "A", 0.99), (2, "A", 0.98), (3, "A", 0.97), (4, "A", 0.96),
               (5, "A", 0.95), (6, "A", 0.94), (7, "B", 0.60), (8, "B", 0.50),
               (9, "C", 0.30), (10, "C", 0.20)])


def order(scored, **kw):
    items = texts(scored)
    return [(p.ref, p.turn, p.rank) for p in
            uncertain_order(scored, lambda ref, prediction: items[ref], **kw)]


def test_predicted_classes_take_turns():
    assert [ref for ref, _ in rank_by_uncertainty(SKEWED)][:5] == [1, 2, 3, 4, 5]
    assert order(SKEWED) == [
        (1, "A", 1), (7, "B", 7), (9, "C", 9),  # each class its most uncertain item
        (2, "A", 2), (8, "B", 8), (10, "C", 10),
        (3, "A", 3), (4, "A", 4), (5, "A", 5), (6, "A", 6)]  # B and C ran out: A alone
    # turns=False is the plain ranking, and says no turn was taken
    assert order(SKEWED, turns=False) == [(r, None, r) for r in range(1, 11)]


def test_without_one_class_per_value_the_order_is_the_plain_ranking():
    spans = {1: (pred([{"start": 0, "end": 3, "label": "X"}]), 0.2), 2: (pred([]), 0.9),
             3: (pred(["a", "b"]), 0.5)}  # spans, no spans, multi-label: no turns
    assert order(spans) == [(2, None, 1), (3, None, 2), (1, None, 3)]
    one_class = pool([(1, "A", 0.1), (2, "A", 0.7)])
    assert order(one_class) == [(2, None, 1), (1, None, 2)]  # one class: no turns to take


def test_items_without_a_class_keep_their_place_in_the_ranking():
    # a rule-based type: no rule matched (value None, uncertainty 1) comes first, as the
    # plain ranking has it; the matched items' classes take turns after them
    rules = {1: (pred(None, 0.0), 1.0), 2: (pred(None, 0.0), 1.0), 3: (pred("A", 1.0), 0.0),
             4: (pred("A", 1.0), 0.0), 5: (pred("B", 1.0), 0.0), 6: (pred("A", 0.8), 0.2)}
    assert order(rules) == [(1, None, 1), (2, None, 2), (6, "A", 3), (5, "B", 6),
                            (3, "A", 4), (4, "A", 5)]
    # in between: it comes once no class item left ranks above it
    mixed = {**SKEWED, **pool([(11, None, 1.0), (12, None, 0.55)])}
    assert [ref for ref, _, _ in order(mixed)] == [11, 1, 7, 9, 2, 8, 10, 3, 4, 5, 6, 12]
    mixed[13] = (pred(None), 0.955)  # ranks between 4 (0.96) and 5 (0.95)
    assert [ref for ref, _, _ in order(mixed)] == [11, 1, 7, 9, 2, 8, 10, 3, 4, 13, 5, 6, 12]


def test_skipped_and_duplicate_items_leave_the_turn_with_their_class():
    items = texts(SKEWED)
    items[7] = None  # labelled meanwhile
    items[8] = SimpleNamespace(text="the same boilerplate page, over and over again")
    items[2] = SimpleNamespace(text="The same boilerplate page, over and over  again")
    picks = list(uncertain_order(SKEWED, lambda ref, prediction: items[ref]))
    assert [(p.ref, p.turn) for p in picks] == [
        (1, "A"), (8, "B"), (9, "C"),  # 7 is gone: B's turn goes to 8
        (3, "A"), (10, "C"),  # 2 is a near-copy of 8: A's turn goes to 3; B is empty
        (4, "A"), (5, "A"), (6, "A")]
    assert picks[1].item is items[8]


def test_the_queue_is_lazy():
    loaded = []

    def load(ref, prediction):
        loaded.append(ref)
        return SimpleNamespace(text=f"text {ref} " * 5)

    queue = uncertain_order(SKEWED, load)
    assert [next(queue).ref for _ in range(2)] == [1, 7] and loaded == [1, 7]


def test_why_line_says_rank_and_turn():
    p = Prediction("a", 0.5, {"a": 0.5, "b": 0.46, "c": 0.04})
    scored = {1: (pred("b"), 0.9), 2: (p, 0.6)}
    picks = list(uncertain_order(scored, lambda ref, prediction: texts([ref])[ref]))
    assert why_uncertain(picks[1], 3) == (
        "margin 0.04 between a (0.50) and b (0.46); uncertainty 0.60; rank 2 of 2 (model v3); "
        "the most uncertain left of those predicted a (predicted classes take turns)")
    plain = list(uncertain_order(scored, lambda ref, prediction: texts([ref])[ref],
                                 turns=False))
    assert why_uncertain(plain[1], 3).endswith("rank 2 of 2 (model v3)")


def test_label_uncertain_lets_the_predicted_classes_take_turns(fakes, index, invoke):
    # the fake model's uncertainty is 1 - score: the torn cardio/neuro notes rank first
    torn = ["cardio and neuro, note {}", "cardio and neuro again, item {}",
            "cardio neuro: a third kind of text, {}"]
    add_document(index, "/docs/a.pdf", [[t.format(i) for t in torn for i in range(2)]])
    add_document(index, "/docs/b.pdf", [["neuro " * 3 + "cardio " * 2 + "exam"],
                                        ["other matters, other cardio"]])
    create_task(index, "topic")
    add_model(index, "topic", 1)
    r = invoke("label", "topic", "--strategy", "uncertain", input="s\n" * 3 + "q\n")
    assert r.exit_code == 0, r.output
    whys = [line for line in r.output.splitlines() if line.startswith("why: ")]
    assert len(whys) == 4 and "skipped 3" in r.output
    # plain ranking: six torn notes predicted cardio first; with turns, neuro and other come in
    assert whys[0].endswith("predicted cardio (predicted classes take turns)")
    assert "rank 1 of 8 (model v1)" in whys[0]
    assert whys[1].endswith("predicted neuro (predicted classes take turns)")
    assert "rank 7 of 8" in whys[1]
    assert whys[2].endswith("predicted other (predicted classes take turns)")
    assert "rank 2 of 8" in whys[3] and "predicted cardio" in whys[3]  # cardio again
    assert "neuro neuro neuro cardio cardio exam" in r.output


# -- the classification plugin's uncertainty ----------------------------------------------
@pytest.fixture
def classification():
    from doctagger.plugins import get_task_type

    return get_task_type("classification"), Task("kind", "classification", ["a", "b", "c"])


def test_classification_uncertainty_is_normalised_entropy(classification):
    task_type, task = classification
    uniform = Prediction("a", 0.34, {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})
    two_way = Prediction("a", 0.5, {"a": 0.5, "b": 0.5, "c": 0.0})
    spread = Prediction("a", 0.4, {"a": 0.4, "b": 0.3, "c": 0.3})
    sure = Prediction("a", 1.0, {"a": 1.0, "b": 0.0, "c": 0.0})
    assert task_type.uncertainty(task, uniform) == pytest.approx(1.0)
    assert task_type.uncertainty(task, sure) == 0.0
    # a margin would put the exact tie first; entropy counts every class
    assert task_type.uncertainty(task, spread) > task_type.uncertainty(task, two_way)
    assert task_type.uncertainty(task, two_way) == pytest.approx(0.631, abs=1e-3)
    assert task_type.uncertainty(task, Prediction("a", 0.7)) == pytest.approx(0.3)


def test_a_whole_document_model_is_asked_about_documents_as_tag_asks_it(fakes, index):
    """--strategy uncertain and review on a model that predicts documents as whole texts:
    its stored document prediction, else the document predicted whole, never a roll-up of
    chunk predictions that can contradict the document's tag."""
    import json

    from doctagger.plugins import get_task_type
    from doctagger.selection import predict_items

    first, _ = add_document(index, "/docs/a.pdf", [["NEURO AGREEMENT", "cardio boilerplate"]])
    second, _ = add_document(index, "/docs/b.pdf", [["OTHER AGREEMENT", "cardio boilerplate"]])
    task = create_task(index, "kind", level="document")
    model_id = add_model(index, "kind", 1)
    with index.write() as db:
        db.execute("update models set info = ? where id = ?",
                   [json.dumps({"document_prediction": "whole text"}), model_id])
        db.execute("insert into document_predictions (task_id, model_id, document_id, value, "
                   "score, scores, created_at) values (?, ?, ?, ?, ?, ?, ?)",
                   [task.id, model_id, first, json.dumps("neuro"), 0.9,
                    json.dumps({"neuro": 0.9, "cardio": 0.05, "other": 0.05}), "now"])
    asked = []

    class Whole:
        def predict(self, texts):  # chunks: would say cardio for the boilerplate
            return [Prediction("cardio", 0.99, {"cardio": 0.99}) for _ in texts]

        def predict_documents(self, documents):
            asked.extend(documents)
            return [Prediction("other", 0.6, {"other": 0.6, "cardio": 0.4}) for _ in documents]

    model = dict(index.one("select * from models where id = ?", [model_id]))
    got = predict_items(index, task, get_task_type("kwclass"), model, Whole, [first, second])
    assert got[first][0].value == "neuro"  # stored: not predicted again
    assert got[second][0].value == "other"
    assert asked == [["OTHER AGREEMENT", "cardio boilerplate"]]
