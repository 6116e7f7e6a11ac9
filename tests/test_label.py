"""doctagger label: scripted terminal sessions (one answer a line), strategies, review,
undo, the NER edit language, near-duplicate suppression."""
from __future__ import annotations

import json

import pytest

from doctagger.labelling import apply_ner_command, label_keys, render_spans
from doctagger.selection import NearDuplicates, explain
from doctagger.tasktypes import Prediction
from tests.fakes import CARDIO, NEURO, OTHER, add_document, add_model, create_task

TEXT = "Today Acme Corp hired Alice and Acme Corp fired Bob."


def labels(index, task="topic"):
    rows = index.query("select l.chunk_id, l.document_id, l.target, l.value, l.source "
                       "from labels l join tasks t on t.id = l.task_id where t.name = ? "
                       "order by l.id", [task])
    for r in rows:
        r["value"] = json.loads(r["value"])
    return rows


@pytest.fixture
def topic(fakes, index):
    a = add_document(index, "/docs/a.pdf", [[CARDIO, OTHER], [NEURO]], title="Report A")
    b = add_document(index, "/docs/b.pdf", [["a cardio or neuro note"]], title="Report B")
    create_task(index, "topic")
    return {"a": a, "b": b}


# -- classification -----------------------------------------------------------------------
def test_sequential_session_saves_each_answer(topic, index, invoke):
    a_chunks = topic["a"][1]
    r = invoke("label", "topic", input="1\n3\nq\n")
    assert r.exit_code == 0, r.output
    assert "/docs/a.pdf · p1 · chunk" in r.output
    assert "why: next unlabelled item in document order" in r.output
    assert "[1 cardio  2 neuro  3 other]" in r.output
    assert "Saved 2 labels, skipped 0." in r.output and "Next: doctagger train topic" in r.output
    assert [(x["chunk_id"], x["value"], x["source"]) for x in labels(index)] == [
        (a_chunks[0], "cardio", "human"), (a_chunks[1], "other", "human")]
    # a new session goes on where this one stopped; label names work as answers
    r = invoke("label", "topic", input="Neuro\n")
    assert "/docs/a.pdf · p2" in r.output
    assert labels(index)[-1]["value"] == "neuro"


def test_end_of_input_keeps_every_answer(topic, index, invoke):
    r = invoke("label", "topic", input="1\n2\n")
    assert r.exit_code == 0
    assert len(labels(index)) == 2  # no 'q' needed: each answer was saved when given


def test_skip_undo_help_and_unknown_keys(topic, index, invoke):
    a_chunks = topic["a"][1]
    r = invoke("label", "topic", input="?\nx\ns\n1\nu\nu\n2\n3\nq\n")
    assert r.exit_code == 0, r.output
    assert "Keys:\n  1  cardio" in r.output and "u  undo the last answer" in r.output
    assert "no key 'x' (? for help)" in r.output
    assert r.output.count("undone") == 2
    # s (chunk 0), 1 (chunk 1), u (chunk 1 again), u (chunk 0 again), 2 -> chunk 0, 3 -> chunk 1
    assert [(x["chunk_id"], x["value"]) for x in labels(index)] == [
        (a_chunks[0], "neuro"), (a_chunks[1], "other")]
    assert "Saved 2 labels, skipped 0." in r.output
    r = invoke("label", "topic", input="u\nq\n")
    assert "nothing to undo" in r.output


def test_undo_restores_a_label_given_before(topic, index):
    from doctagger.labelling import Item, Session
    from doctagger.labels import save_label

    task = index.task("topic")
    chunk = topic["a"][1][0]
    save_label(index, task, "neuro", chunk_id=chunk, source="import")
    item = Item("chunk", topic["a"][0], chunk, CARDIO, "/docs/a.pdf")
    session = Session(index, task, None, iter([]))
    session.save(item, "cardio")
    assert labels(index)[0]["value"] == "cardio"
    assert session.undo(None) is item
    assert [(x["value"], x["source"]) for x in labels(index)] == [("neuro", "import")]


def test_limit_and_nothing_left(topic, index, invoke):
    r = invoke("label", "topic", "--limit", "2", input="1\n1\n1\n")
    assert "No more items (--limit 2)." in r.output
    assert len(labels(index)) == 2
    r = invoke("label", "topic", input="1\n1\n1\n")
    assert len(labels(index)) == 4
    r = invoke("label", "topic")
    assert "Nothing to label" in r.output


def test_identical_text_is_asked_once(fakes, index, invoke):
    add_document(index, "/docs/a.pdf", [["Confidential footer.", CARDIO]])
    add_document(index, "/docs/b.pdf", [["Confidential   footer.", NEURO]])
    create_task(index, "topic")
    r = invoke("label", "topic", input="3\n1\n2\n")
    assert r.exit_code == 0, r.output
    assert r.output.count("Confidential") == 1
    assert [x["value"] for x in labels(index)] == ["other", "cardio", "neuro"]


def test_multi_label_toggles(fakes, index, invoke):
    add_document(index, "/docs/a.pdf", [["one", "two", "three"]])
    create_task(index, "multi", multi_label=True)
    r = invoke("label", "multi", input="1\n3\n1\n2\n\n\n0\n")
    assert r.exit_code == 0, r.output
    assert "label {cardio, other}> " in r.output
    assert "toggle labels with their keys, then Enter" in r.output
    assert [x["value"] for x in labels(index, "multi")] == [["neuro", "other"], []]


def test_document_level_task_shows_title_and_opening(fakes, index, invoke):
    a, _ = add_document(index, "/docs/a.pdf", [[CARDIO], [OTHER]], title="Cardiology report")
    create_task(index, "doctopic", level="document")
    r = invoke("label", "doctopic", input="1\n")
    assert r.exit_code == 0, r.output
    assert "Title: Cardiology report" in r.output and "document " + str(a) in r.output
    assert CARDIO in r.output and OTHER in r.output
    assert [(x["target"], x["document_id"], x["value"]) for x in labels(index, "doctopic")] == [
        ("document", a, "cardio")]


def test_random_with_seed_and_uncertain_without_model(topic, index, invoke):
    r = invoke("label", "topic", "--strategy", "random", "--seed", "3", input="s\ns\ns\ns\n")
    assert r.exit_code == 0, r.output
    assert r.output.count("why: random pick (seed 3)") == 4
    assert "Saved 0 labels, skipped 4." in r.output
    r = invoke("label", "topic", "--strategy", "uncertain", input="q\n")
    assert "Note: task 'topic' has no trained model yet, so items come at random" in r.output


def test_uncertain_asks_the_least_sure_first_and_skips_near_duplicates(fakes, index, invoke):
    boiler = "This page intentionally left blank for cardio and neuro review, page {}."
    add_document(index, "/docs/a.pdf", [[CARDIO, boiler.format(1)], [boiler.format(2)]])
    add_document(index, "/docs/b.pdf", [[NEURO, boiler.format(3), "cardio, neuro or other"]])
    create_task(index, "topic")
    add_model(index, "topic", 1)
    r = invoke("label", "topic", "--strategy", "uncertain", input="s\ns\ns\ns\ns\n")
    assert r.exit_code == 0, r.output
    whys = [line for line in r.output.splitlines() if line.startswith("why: ")]
    # three-way tie first, then one boilerplate page (its twins are not asked), then the rest
    assert whys[0].startswith("why: margin 0.00 between cardio (0.33) and neuro (0.33)")
    assert "rank 1 of 6 (model v1)" in whys[0]
    assert whys[1].startswith("why: margin 0.00 between cardio (0.48) and neuro (0.48)")
    assert r.output.count("intentionally left blank") == 1
    assert len(whys) == 4 and "Saved 0 labels, skipped 4." in r.output


def test_review_accepts_and_corrects_model_predictions(fakes, index, invoke):
    _, chunks = add_document(index, "/docs/a.pdf", [[CARDIO, "a cardio or neuro note", NEURO]])
    create_task(index, "topic")
    add_model(index, "topic", 1)
    assert invoke("tag", "topic", "--min-score", "0.7").exit_code == 0
    r = invoke("label", "topic", "--review", input="a\n\n1\nq\n")
    assert r.exit_code == 0, r.output
    assert "Reviewing predictions of topic v1." in r.output
    first_why = next(line for line in r.output.splitlines() if line.startswith("why: "))
    assert first_why.endswith("queued for review (under --min-score)")
    assert "model: cardio (0.48)" in r.output
    # queued first (the weak one), then the least sure; Enter accepts; a key corrects
    assert [(x["chunk_id"], x["value"], x["source"]) for x in labels(index)] == [
        (chunks[1], "cardio", "model-accepted"), (chunks[0], "cardio", "model-accepted"),
        (chunks[2], "cardio", "human")]
    assert "Saved 3 labels (2 accepted from the model), skipped 0." in r.output


def test_undoing_an_accepted_answer_uncounts_it(fakes, index, invoke):
    add_document(index, "/docs/a.pdf", [[CARDIO, "a cardio or neuro note", NEURO]])
    create_task(index, "topic")
    add_model(index, "topic", 1)
    assert invoke("tag", "topic", "--min-score", "0.7").exit_code == 0
    r = invoke("label", "topic", "--review", input="a\n\nu\nq\n")
    assert r.exit_code == 0, r.output
    assert "Saved 1 label (1 accepted from the model), skipped 0." in r.output


def test_review_needs_a_model(topic, invoke):
    r = invoke("label", "topic", "--review")
    assert r.exit_code == 1
    assert "task 'topic' has no trained model yet" in r.output


def test_label_errors(fakes, index, invoke):
    r = invoke("label", "nope")
    assert r.exit_code == 1 and "no task 'nope'" in r.output
    create_task(index, "topic")
    r = invoke("label", "topic", "--strategy", "smart")
    assert r.exit_code == 2 and "smart" in r.output


# -- NER ----------------------------------------------------------------------------------
@pytest.fixture
def people(fakes, index):
    doc = add_document(index, "/docs/n.pdf", [[TEXT, "Nothing here at all."]])
    create_task(index, "people", "capsner", labels=("PER", "ORG"))
    return doc


def test_ner_session_premarks_and_edits(people, index, invoke):
    chunks = people[1]
    script = "\n".join(["?", "+ Nobody = PER", "+ Acme Corp = ORG", "+ Acme Corp = ORG",
                        "- 9", "+ Alice = LOC", "3 = org", "- 4", "2 = PER", "a",
                        "a"]) + "\n"
    r = invoke("label", "people", input=script)
    assert r.exit_code == 0, r.output
    # pre-marked by the (rule-based) model
    assert "[Acme Corp|1:ORG] hired [Alice|2:PER] and [Acme Corp|3:ORG] fired [Bob|4:PER]" in r.output
    assert "+ TEXT = LABEL     mark the first unmarked occurrence of TEXT" in r.output
    assert "no 'Nobody' in the text" in r.output
    assert "every 'Acme Corp' in the text is marked already" in r.output
    assert "no span 9 (there are 4)" in r.output
    assert "unknown label 'LOC' (labels: PER, ORG)" in r.output
    assert "span 3 is now ORG" in r.output and "dropped 1 span(s)" in r.output
    saved = labels(index, "people")
    assert saved[0]["chunk_id"] == chunks[0] and saved[0]["source"] == "human"
    assert [(TEXT[s["start"]:s["end"]], s["label"]) for s in saved[0]["value"]] == [
        ("Acme Corp", "ORG"), ("Alice", "PER"), ("Acme Corp", "ORG")]
    # the second chunk: the model found nothing, accepting that is accepting the model
    assert saved[1]["value"] == [] and saved[1]["source"] == "model-accepted"
    # a rule-based type needs no training: the hint says what labels are for there
    assert "Next: doctagger train" not in r.output
    assert "Next: doctagger eval people (checks the task type's answers against your " \
           "labels), then doctagger tag people" in r.output


def test_ner_add_after_drop_and_overlap(people, index, invoke):
    script = "- *\n+ Acme = ORG\n+ Acme Corp = ORG\n- 1\n+ acme corp = org\n+ Bob = PER\na\nq\n"
    r = invoke("label", "people", input=script)
    assert r.exit_code == 0, r.output
    assert "dropped every span" in r.output
    assert "'Acme Corp' overlaps span 1 ('Acme'=ORG); drop it first with '- 1'" in r.output
    value = labels(index, "people")[0]["value"]
    assert [(TEXT[s["start"]:s["end"]], s["label"]) for s in value] == [
        ("Acme Corp", "ORG"), ("Bob", "PER")]


def test_ner_document_level_is_refused(fakes, index, invoke):
    from doctagger.labelling import start_session
    from doctagger.tasks import create_task as create

    create(index, "people", type="capsner", labels=["PER"])
    index.db.execute("update tasks set level = 'document' where name = 'people'")
    with pytest.raises(Exception) as info:
        start_session(index, "people")
    assert "labelled chunk by chunk" in str(info.value)


def test_label_help_documents_the_ner_language(invoke):
    r = invoke("label", "--help")
    assert r.exit_code == 0
    for text in ("+ TEXT = LABEL", "- N [N ...]", "N = LABEL", "--review", "--strategy",
                 "doctagger label topic --strategy uncertain"):
        assert text in r.output


# -- pure pieces --------------------------------------------------------------------------
def test_apply_ner_command_pieces():
    spans = [{"start": 6, "end": 15, "label": "ORG"}]
    r = apply_ner_command("+ 'Alice' = P", TEXT, spans, ["PER", "ORG"])
    assert r.action == "edit" and r.spans[1] == {"start": 22, "end": 27, "label": "PER"}
    assert apply_ner_command("+ Alice = X", TEXT, spans, ["PER", "ORG"]).action == "error"
    assert apply_ner_command("+ Alice", TEXT, spans, ["PER"]).message.startswith("add a span")
    assert apply_ner_command("- x", TEXT, spans, ["PER"]).action == "error"
    assert apply_ner_command("1 = PER", TEXT, spans, ["PER"]).spans[0]["label"] == "PER"
    assert apply_ner_command("", TEXT, spans, ["PER"]).action == "accept"
    assert apply_ner_command("hello", TEXT, spans, ["PER"]).message.startswith("did not understand")
    assert spans == [{"start": 6, "end": 15, "label": "ORG"}]  # never modified in place
    assert render_spans("ab cd", [{"start": 3, "end": 5, "label": "X"}]) == "ab [cd|1:X]"


def test_label_keys_skip_command_letters():
    keys = label_keys([f"l{i}" for i in range(12)])
    assert list(keys)[:10] == list("123456789b")
    assert not set(keys) & set("asuq?0")


def test_near_duplicates():
    seen = NearDuplicates()
    base = " ".join(f"word{i}" for i in range(60))
    assert seen.check_and_add(base) is False
    assert seen.check_and_add(base.replace("word30", "other")) is True  # one word differs
    assert seen.check_and_add(" ".join(f"term{i}" for i in range(60))) is False
    assert seen.check_and_add("short text") is False
    assert seen.check_and_add("Short   TEXT") is True


def test_explain():
    p = Prediction("a", 0.5, {"a": 0.5, "b": 0.46, "c": 0.04})
    assert explain(p, 0.54) == "margin 0.04 between a (0.50) and b (0.46); uncertainty 0.54"
    assert explain(Prediction("a", 0.4), 0.6) == "model says a with score 0.40; uncertainty 0.60"
    spans = Prediction([{"start": 0, "end": 1, "label": "X", "score": 0.3}], 0.3)
    assert explain(spans, 0.7).startswith("1 entities predicted, least sure 0.30")


# -- document-level review and uncertainty; the terminal key path --------------------------
@pytest.fixture
def doctopic(fakes, index):
    a, _ = add_document(index, "/docs/a.pdf", [[CARDIO, "cardio cardio"]], title="Cardio")
    b, _ = add_document(index, "/docs/b.pdf", [["nothing here", "nor here"]], title="Empty")
    create_task(index, "doctopic", level="document")
    add_model(index, "doctopic", 1)
    return a, b


def test_document_level_review(doctopic, index, invoke):
    a, b = doctopic
    assert invoke("tag", "doctopic", "--min-score", "0.5").exit_code == 0
    r = invoke("label", "doctopic", "--review", input="3\na\n")
    assert r.exit_code == 0, r.output
    assert r.output.index("Title: Empty") < r.output.index("Title: Cardio")  # queued first
    assert [(x["target"], x["document_id"], x["value"], x["source"])
            for x in labels(index, "doctopic")] == [
        ("document", b, "other", "human"), ("document", a, "cardio", "model-accepted")]


def test_document_level_uncertain(doctopic, invoke):
    a, b = doctopic
    r = invoke("label", "doctopic", "--strategy", "uncertain", input="s\ns\n")
    assert r.exit_code == 0, r.output
    assert "Scoring up to 2000 unlabelled items with doctopic v1" in r.output
    whys = [line for line in r.output.splitlines() if line.startswith("why: ")]
    assert len(whys) == 2 and "rank 1 of 2" in whys[0]
    assert whys[0].startswith("why: margin 0.00 between")  # mean chunk probabilities
    assert r.output.index("Title: Empty") < r.output.index("Title: Cardio")


def test_terminal_keys_are_single_presses(fakes, index, invoke, monkeypatch):
    import click

    from doctagger.cli import label as label_cli

    add_document(index, "/docs/a.pdf", [["one", "two"]])
    create_task(index, "multi", multi_label=True)
    presses = list("13\r2\r")
    monkeypatch.setattr(label_cli.Keys, "__init__", lambda self: setattr(self, "tty", True))
    monkeypatch.setattr(click, "getchar", lambda *a, **k: presses.pop(0))
    r = invoke("label", "multi")
    assert r.exit_code == 0, r.output
    assert [x["value"] for x in labels(index, "multi")] == [["cardio", "other"], ["neuro"]]
    assert not presses


def test_a_value_the_task_type_refuses_is_asked_again(people, index, invoke, monkeypatch):
    from doctagger.errors import InvalidLabelError
    from tests.fakes import CapsNER

    real = CapsNER.validate

    def picky(self, task, value):
        if len(value) > 3:
            raise InvalidLabelError("at most 3 spans in this test")
        return real(self, task, value)

    monkeypatch.setattr(CapsNER, "validate", picky)
    r = invoke("label", "people", "--limit", "1", input="a\n- 4\na\n")
    assert r.exit_code == 0, r.output
    assert "not saved: at most 3 spans in this test" in r.output
    assert len(labels(index, "people")[0]["value"]) == 3


def test_prediction_line_of_no_answer():
    """A rule-based type's "no answer" (None) is shown as such, not as 'None'."""
    from doctagger.cli.label import _prediction_line
    from doctagger.labelling import Item

    def line(value, score=0.0):
        item = Item.__new__(Item)
        item.prediction = Prediction(value, score)
        return _prediction_line(item)

    assert line(None) == "model: (no answer) (0.00)"
    assert line([]) == "model: (none) (0.00)"
    assert line(["a", "b"], 0.5) == "model: a, b (0.50)"
    assert line("cardio", 0.9) == "model: cardio (0.90)"


def test_eval_of_a_rule_based_type_uses_all_its_labels(people, index, invoke, monkeypatch):
    """A type that needs no training learns nothing from labels: eval measures it on all of
    them (what the hint after `label` promises), not on a held-out set it never had."""
    from tests.fakes import CapsNER

    seen = {}

    def evaluate(self, task, examples, predictions):
        seen["n"] = len(examples)
        same = sum(e.value == [{k: s[k] for k in ("start", "end", "label")} for s in p.value]
                   for e, p in zip(examples, predictions))
        return {"exact": same / len(examples)}

    monkeypatch.setattr(CapsNER, "evaluate", evaluate, raising=False)
    r = invoke("eval", "people")
    assert r.exit_code == 1 and "no labels to measure it against" in r.output
    r = invoke("label", "people", input="a\na\n")
    assert r.exit_code == 0, r.output
    r = invoke("eval", "people")
    assert r.exit_code == 0, r.output
    assert "people v1 on all labels (2 examples)" in r.output and seen["n"] == 2
    assert "exact" in r.output and "1.0000" in r.output  # accepted as the rules said


# -- QA fixes: whole words, pre-marking, ambiguous prefixes, a selection on one line ------
WORDS_TEXT = "Page one: damage to these walls; the age of all walls."


def test_ner_add_marks_whole_words_only(fakes, index, invoke):
    add_document(index, "/docs/w.pdf", [[WORDS_TEXT]])
    create_task(index, "ents", "capsner", labels=("person", "location"))
    script = "\n".join(["+ age = person", "+ age = person", "+ the = location",
                        "+ the = location", "+ dam = person", "+ nowhere = person",
                        "+ page = location", "a"]) + "\n"
    r = invoke("label", "ents", input=script)
    assert r.exit_code == 0, r.output
    assert "marked 'age' as person" in r.output
    assert "every 'age' in the text is marked already" in r.output  # not P[age], dam[age]
    assert "every 'the' in the text is marked already" in r.output  # not [the]se
    assert "no whole-word 'dam' in the text" in r.output
    assert "no 'nowhere' in the text" in r.output
    assert "marked 'Page' as location" in r.output  # exact case first, then any case
    value = labels(index, "ents")[0]["value"]
    assert [(s["start"], WORDS_TEXT[s["start"]:s["end"]], s["label"]) for s in value] == [
        (0, "Page", "location"), (33, "the", "location"), (37, "age", "person")]


def test_whole_word_boundaries_are_unicode_aware():
    def add(needle, text, spans=()):
        return apply_ner_command(f"+ {needle} = X", text, list(spans), ["X"])

    assert add("caf", "un café noir").message == "no whole-word 'caf' in the text (only " \
                                                "inside longer words, which are never marked)"
    r = add("café", "un café noir")
    assert r.action == "edit" and r.spans[0] == {"start": 3, "end": 7, "label": "X"}
    assert add("stra", "die Straße").action == "error"
    assert add("x", "x_y and z").action == "error"  # '_' is a word character
    assert add("Straße", "die straße, die").spans[0]["start"] == 4  # any case
    # a needle that starts or ends with a non-word character needs no boundary there
    assert add("(b)", "item(b) here").spans[0] == {"start": 4, "end": 7, "label": "X"}
    assert add("-old", "age-old walls").spans[0] == {"start": 3, "end": 7, "label": "X"}
    # a part-word match overlapping a whole word does not hide it
    assert add("ab ab", "xab ab ab").spans[0] == {"start": 4, "end": 9, "label": "X"}
    # the first unmarked whole word, past the ones marked already
    first = add("age", "age, damage and age")
    assert add("age", "age, damage and age", first.spans).spans[1]["start"] == 16


def test_no_spans_premarked_from_a_model_that_learned_nothing(people, index, invoke):
    add_model(index, "people", 1)
    index.db.execute("update models set info = ? where version = 1",
                     [json.dumps({"learned_nothing": True})])
    r = invoke("label", "people", "--limit", "1", input="a\n")
    assert r.exit_code == 0, r.output
    assert r.output.count(
        "Note: the active model (v1) learned nothing: no spans are pre-marked") == 1
    assert "[Acme Corp|" not in r.output and "(no spans)" in r.output
    # a plain accept saves what was shown, nothing, as the user's own answer
    assert [(x["value"], x["source"]) for x in labels(index, "people")] == [([], "human")]
    r = invoke("label", "people", "--model", "1", input="q\n")
    assert "Note: the model (v1) learned nothing: no spans are pre-marked" in r.output


def test_spans_scored_under_half_are_not_premarked(people, index, invoke, monkeypatch):
    from tests.fakes import CapsPredictor

    real = CapsPredictor.predict

    def unsure_of_people(self, texts):
        out = real(self, texts)
        for p in out:
            for s in p.value:
                s["score"] = 0.3 if s["label"] == "PER" else s["score"]
        return out

    monkeypatch.setattr(CapsPredictor, "predict", unsure_of_people)
    r = invoke("label", "people", "--limit", "1", input="\n")
    assert r.exit_code == 0, r.output
    assert "[Acme Corp|1:ORG] hired Alice and [Acme Corp|2:ORG] fired Bob." in r.output
    assert "not marked, the model scored them under 0.5: 'Alice'=PER (0.30), " \
           "'Bob'=PER (0.30)" in r.output
    saved = labels(index, "people")[0]
    assert [TEXT[s["start"]:s["end"]] for s in saved["value"]] == ["Acme Corp", "Acme Corp"]
    assert saved["source"] == "human"  # not the model's answer: it also said Alice and Bob


def test_premarked_spans_rule():
    from doctagger.labelling import premarked_spans

    value = [{"start": 0, "end": 2, "label": "A", "score": 0.09},
             {"start": 3, "end": 5, "label": "B", "score": 0.5},
             {"start": 6, "end": 8, "label": "C"}, "junk"]
    keep, low = premarked_spans(value)
    assert keep == [{"start": 3, "end": 5, "label": "B"}, {"start": 6, "end": 8, "label": "C"}]
    assert low == [value[0]]
    assert premarked_spans(None) == ([], [])


def test_an_ambiguous_label_prefix_is_said(fakes, index, invoke):
    add_document(index, "/docs/c.pdf", [[TEXT]])
    create_task(index, "ents", "capsner", labels=("corporation", "creative-work", "person"))
    script = "- *\n+ Acme Corp = c\n+ Acme Corp = zz\n+ Acme Corp = co\n1 = c\n1 = CR\na\n"
    r = invoke("label", "ents", input=script)
    assert r.exit_code == 0, r.output
    assert r.output.count("'c' could be corporation or creative-work: type more of it") == 2
    assert "unknown label 'zz' (labels: corporation, creative-work, person)" in r.output
    assert "unknown label 'c'" not in r.output
    assert "marked 'Acme Corp' as corporation" in r.output
    assert "span 1 is now creative-work" in r.output
    assert [s["label"] for s in labels(index, "ents")[0]["value"]] == ["creative-work"]


def test_multi_label_selection_on_one_line(fakes, index, invoke):
    add_document(index, "/docs/m.pdf", [["one", "two", "three"]])
    create_task(index, "symptoms", multi_label=True, labels=("nervous", "neuro", "general"))
    script = "?\nnervous,general\nne\nne,general\nbogus, general\n2, 3\n1\nneuro,\n"
    r = invoke("label", "symptoms", input=script)
    assert r.exit_code == 0, r.output
    assert "(a line like '1,3' or 'neuro,other' saves that selection at once)" in r.output
    assert "saved: general, nervous" in r.output
    assert "'ne' could be nervous or neuro: type more of it (? for help)" in r.output
    assert "'ne' could be nervous or neuro: type more of it; nothing saved" in r.output
    assert "unknown label 'bogus' (labels: nervous, neuro, general); nothing saved" in r.output
    # a line is the whole selection: what was toggled before it does not count
    assert [x["value"] for x in labels(index, "symptoms")] == [
        ["general", "nervous"], ["general", "neuro"], ["neuro"]]


def test_a_selection_line_for_a_single_label_task(topic, index, invoke):
    r = invoke("label", "topic", input="cardio,neuro\n2\n")
    assert r.exit_code == 0, r.output
    assert "one label per item: task 'topic' is not multi-label" in r.output
    assert [x["value"] for x in labels(index)] == ["neuro"]


def test_add_span_edge_cases_of_words_and_case():
    import unicodedata

    labels = ["X"]
    # combining marks belong to their word: no match inside 'हिंदी' or a decomposed 'café'
    hindi = "भाषा हिंदी है"
    r = apply_ner_command("+ हि = X", hindi, [], labels)
    assert r.action == "error" and "no whole-word" in r.message
    cafe = unicodedata.normalize("NFD", "un café noir")
    assert apply_ner_command("+ cafe = X", cafe, [], labels).action == "error"
    # once every exact-case occurrence is marked, the other cases come next
    text = "Apple and apple"
    r = apply_ner_command("+ apple = X", text, [], labels)
    assert r.spans == [{"start": 10, "end": 15, "label": "X"}]
    r = apply_ner_command("+ apple = X", text, r.spans, labels)
    assert r.action == "edit" and r.spans[0] == {"start": 0, "end": 5, "label": "X"}
    r = apply_ner_command("+ apple = X", text, r.spans, labels)
    assert r.message == "every 'apple' in the text is marked already"
    # an overlapping occurrence of text already marked is not a clash
    r = apply_ner_command("+ a a = X", "a a a", [{"start": 0, "end": 3, "label": "X"}], labels)
    assert r.message == "every 'a a' in the text is marked already"
