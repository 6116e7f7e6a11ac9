"""doctagger tag: streaming predictions, roll-up into document tags, --min-score, PDF copies.

The fake task types (keyword classifier, capitalised-word NER) and corpus helpers are in
tests/fakes.py; the ``fakes`` fixture is in tests/conftest.py.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from doctagger.index import Index
from doctagger.tasktypes import Prediction
from tests.conftest import REPO
from tests.fakes import (CARDIO, NEURO, OTHER, KeywordClassification, KeywordPredictor,
                         add_document, add_model, add_pdf, create_task, make_pdf)


@pytest.fixture
def corpus(fakes, index):
    """Two documents on two pages each, a chunk-level task 'topic' with model v1."""
    a = add_document(index, "/docs/a.pdf", [[CARDIO, OTHER], [CARDIO + " again"]], title="A")
    b = add_document(index, "/docs/b.pdf", [[NEURO], [OTHER]], title="B")
    create_task(index, "topic")
    add_model(index, "topic", 1)
    return {"a": a, "b": b}


def tags_of(index, document_id, task="topic"):
    rows = index.query(
        "select g.label, g.score, g.chunks, g.pages, g.extra, m.version from document_tags g "
        "join tasks t on t.id = g.task_id join models m on m.id = g.model_id "
        "where g.document_id = ? and t.name = ? order by g.label", [document_id, task])
    for r in rows:
        for k in ("chunks", "pages", "extra"):
            r[k] = json.loads(r[k])
    return rows


# -- tag ----------------------------------------------------------------------------------
def test_tag_writes_predictions_and_rolls_them_up(corpus, index, invoke):
    r = invoke("tag", "topic")
    assert r.exit_code == 0, r.output
    assert "Tagged 5 chunks of 2 documents with topic v1" in r.output
    preds = index.query("select chunk_id, value, score, uncertainty, review from predictions")
    assert len(preds) == 5 and all(p["review"] == 0 for p in preds)
    assert all(0 <= p["uncertainty"] <= 1 for p in preds)
    a_id, a_chunks = corpus["a"]
    tags = {t["label"]: t for t in tags_of(index, a_id)}
    # chunk-level: a document carries a label when one of its chunks does
    assert set(tags) == {"cardio", "other"}
    assert tags["cardio"]["chunks"][0] in (a_chunks[0], a_chunks[2])
    assert set(tags["cardio"]["chunks"]) == {a_chunks[0], a_chunks[2]}
    assert tags["cardio"]["pages"] == sorted(tags["cardio"]["pages"]) or len(tags["cardio"]["pages"]) == 2
    assert set(tags["cardio"]["pages"]) == {1, 2}
    assert tags["other"]["chunks"] == [a_chunks[1]] and tags["other"]["pages"] == [1]
    assert tags["cardio"]["version"] == 1
    b_tags = {t["label"] for t in tags_of(index, corpus["b"][0])}
    assert b_tags == {"neuro", "other"}
    # every batch ran under inference mode
    assert KeywordClassification.calls and all(c["inference"] for c in KeywordClassification.calls)


def test_rerun_tags_only_new_chunks_and_all_retags_without_duplicates(corpus, index, invoke):
    assert invoke("tag", "topic").exit_code == 0
    r = invoke("tag", "topic")
    assert r.exit_code == 0
    assert "Nothing to tag" in r.output
    new_doc, new_chunks = add_document(index, "/docs/c.pdf", [[NEURO + " neuro"]])
    KeywordClassification.calls.clear()
    r = invoke("tag", "topic", "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output)
    assert summary["chunks"] == 1 and summary["documents"] == 1
    assert [c["texts"] for c in KeywordClassification.calls] == [[NEURO + " neuro"]]
    assert [t["label"] for t in tags_of(index, new_doc)] == ["neuro"]
    r = invoke("tag", "topic", "--all", "--json")
    assert json.loads(r.output)["chunks"] == 6
    assert index.scalar("select count(*) from predictions") == 6
    assert index.scalar("select count(*) from (select model_id, chunk_id from predictions "
                        "group by 1, 2 having count(*) > 1)") == 0


def test_a_repeated_text_is_predicted_once_and_every_chunk_gets_its_prediction(
        corpus, index, invoke):
    """Headers, footers, boilerplate: a text that occurs again (same text hash) reaches
    the model once a run; each of its chunks still gets the prediction."""
    header = "Cardio clinic letterhead, page header"
    extra, extra_chunks = add_document(index, "/docs/c.pdf", [[header, NEURO], [header],
                                                               [header, CARDIO]])
    r = invoke("tag", "topic", "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output)
    seen = [t for c in KeywordClassification.calls for t in c["texts"]]
    chunks = index.query("select id, text from chunks")
    assert summary["chunks"] == len(chunks) == 10
    assert sorted(seen) == sorted({c["text"] for c in chunks})  # each text once
    assert summary["repeated_texts"] == len(chunks) - len(set(seen)) == 5
    values = {p["chunk_id"]: p["value"]
              for p in index.query("select chunk_id, value from predictions")}
    assert set(values) == {c["id"] for c in chunks}
    assert {values[c] for c in extra_chunks[:1] + extra_chunks[2:4]} == {'"cardio"'}
    r = invoke("tag", "topic", "--all")
    assert "(5 repeated a text already predicted)" in r.output


def test_the_same_words_spaced_differently_are_predicted_apart(fakes, index):
    """Spans are offsets into the text: a chunk whose words equal another's but whose
    white space differs (same text_hash) gets its own prediction."""
    from doctagger.tagging import tag_task

    add_document(index, "/docs/n.pdf", [["Met Tim Cook today", "Met  Tim Cook today"]])
    create_task(index, "people", type_="capsner", labels=("PER",))
    summary = tag_task(index, "people")
    assert summary["chunks"] == 2 and summary["repeated_texts"] == 0
    rows = index.query("select c.text, p.value from predictions p join chunks c "
                       "on c.id = p.chunk_id order by c.id")
    for row in rows:
        spans = json.loads(row["value"])
        assert [row["text"][s["start"]:s["end"]] for s in spans] == ["Tim", "Cook"]


def test_batches_are_sorted_by_length_and_pages_bound_memory(corpus, index):
    from doctagger.tagging import tag_task

    texts = [("word " * n).strip() + " cardio" for n in (9, 1, 5, 3, 7, 2, 8)]
    add_document(index, "/docs/long.pdf", [texts])
    seen = []
    summary = tag_task(index, "topic", batch_size=2, page_size=4, progress=seen.append)
    assert summary["chunks"] == 12 and sum(seen) == 12 and max(seen) == 2
    assert summary["documents"] == 3  # documents that span pages are counted (and rolled) once
    batches = [c["texts"] for c in KeywordClassification.calls]
    assert all(len(b) <= 2 for b in batches)
    # within a page (4 chunks = 2 batches), the batches go shortest first
    for first, second in zip(batches[0::2], batches[1::2]):
        assert max(map(len, first)) <= min(map(len, second))
    assert index.scalar("select count(*) from predictions") == 12


def test_min_score_queues_for_review_and_writes_no_tag(corpus, index, invoke):
    weak, weak_chunks = add_document(index, "/docs/weak.pdf", [["a cardio or neuro note"]])
    r = invoke("tag", "topic", "--min-score", "0.7", "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output)
    assert summary["review"] == 1
    queued = index.query("select chunk_id, score from predictions where review = 1")
    assert [q["chunk_id"] for q in queued] == weak_chunks and queued[0]["score"] < 0.7
    assert tags_of(index, weak) == []  # below --min-score: no tag
    assert {t["label"] for t in tags_of(index, corpus["a"][0])} == {"cardio", "other"}
    r = invoke("tag", "topic", "--min-score", "0.7", "--all")
    assert "1 predictions under --min-score are queued for review: " \
           "doctagger label topic --review" in r.output
    # a later run without --min-score and without --all keeps the flags and says whence
    r = invoke("tag", "topic")
    assert "1 predictions are still queued for review from an earlier --min-score run: " \
           "doctagger label topic --review ('doctagger tag topic --all' re-decides them)" \
        in r.output and "under --min-score" not in r.output
    # tagging again without --min-score releases the queue and tags the document
    r = invoke("tag", "topic", "--all", "--json")
    assert json.loads(r.output)["review"] == 0
    assert [t["label"] for t in tags_of(index, weak)] == ["cardio"]
    r = invoke("tag", "topic", "--min-score", "1.5")
    assert r.exit_code == 2 and "--min-score" in r.output


def test_document_level_aggregates_chunk_probabilities(fakes, index, invoke):
    a, a_chunks = add_document(index, "/docs/a.pdf", [[CARDIO, OTHER, "cardio cardio"]])
    b, _ = add_document(index, "/docs/b.pdf", [["nothing here", "nor here"]])
    create_task(index, "doctopic", level="document")
    add_model(index, "doctopic", 1)
    r = invoke("tag", "doctopic", "--json")
    assert r.exit_code == 0, r.output
    tags = tags_of(index, a, "doctopic")
    assert [t["label"] for t in tags] == ["cardio"]  # single-label: one tag per document
    assert tags[0]["extra"]["aggregate"] == "mean of chunk probabilities"  # one rule: the plugin's wording
    assert tags[0]["chunks"][0] in (a_chunks[0], a_chunks[2]) and a_chunks[1] not in tags[0]["chunks"][:2]
    # b: every label equally likely -> a weak tag; with --min-score it is queued instead
    r = invoke("tag", "doctopic", "--all", "--min-score", "0.5", "--json")
    summary = json.loads(r.output)
    assert summary["untagged_documents"] == 1
    assert tags_of(index, b, "doctopic") == []
    queued = index.query("select distinct c.document_id from predictions p join chunks c "
                         "on c.id = p.chunk_id where p.review = 1")
    assert [q["document_id"] for q in queued] == [b]
    assert summary["review"] == 1  # document-level: queued documents
    r = invoke("tag", "doctopic", "--all", "--min-score", "0.5")
    assert "1 documents without a tag under --min-score are queued for review" in r.output


def test_review_count_leaves_out_items_labelled_already(fakes, index, invoke):
    """The summary's review count is what 'label --review' asks about: queued items with
    no label for the task (QA: 22 queued, 'label --review' had nothing to ask)."""
    from doctagger.labels import save_label
    from doctagger.plugins import get_task_type
    from doctagger.selection import review

    docs = [add_document(index, f"/docs/{n}.pdf", [[f"{n} cardio note", "neuro"]])[0]
            for n in "abc"]
    create_task(index, "kind", level="document")
    model_id = add_model(index, "kind", 1)
    task = index.task("kind")
    save_label(index, task, "cardio", document_id=docs[0])
    save_label(index, task, "neuro", document_id=docs[1])
    r = invoke("tag", "kind", "--min-score", "0.99", "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output)
    assert summary["untagged_documents"] == 3
    assert summary["review"] == 1  # not 3: two of the queued items are labelled already
    assert summary["review_labelled"] == 2
    model = index.one("select * from models where id = ?", [model_id])
    asked = [item.document_id for item in review(index, task, get_task_type("kwclass"), model)
             if item.queued]
    assert asked == [docs[2]]  # what 'label kind --review' asks first: the same count
    r = invoke("tag", "kind", "--all", "--min-score", "0.99")
    assert "1 documents without a tag under --min-score are queued for review (2 more are " \
           "labelled already): doctagger label kind --review" in r.output
    save_label(index, task, "other", document_id=docs[2])
    r = invoke("tag", "kind", "--all", "--min-score", "0.99")
    assert "3 documents without a tag under --min-score are labelled already: nothing to " \
           "review." in r.output
    assert "queued for review" not in r.output


def test_review_count_of_a_chunk_level_task_leaves_out_labelled_texts(corpus, index, invoke):
    """A chunk counts as labelled when it or a chunk with the same text has a label."""
    from doctagger.labels import save_label

    weak, (w1,) = add_document(index, "/docs/weak.pdf", [["a cardio or neuro note"]])
    copy, (w2,) = add_document(index, "/docs/copy.pdf", [["a cardio  or neuro note"]])
    other, (w3,) = add_document(index, "/docs/other.pdf", [["a neuro or cardio note"]])
    save_label(index, index.task("topic"), "cardio", chunk_id=w1)
    r = invoke("tag", "topic", "--min-score", "0.7", "--json")
    summary = json.loads(r.output)
    assert index.scalar("select count(*) from predictions where review = 1") == 3
    assert summary["review"] == 1  # not 3: two of the queued items are labelled already
    assert summary["review_labelled"] == 2


@pytest.mark.parametrize("multi", [False, True])
def test_export_of_document_level_predictions_keeps_untagged_documents(fakes, index, invoke,
                                                                      multi):
    """QA: 'export kind --predictions' wrote the 6 tagged documents and left out the 26
    under --min-score. Every predicted document is exported; one without a tag has the
    value None ([] multi-label) and its best score."""
    a, _ = add_document(index, "/docs/a.pdf", [[CARDIO, CARDIO + " cardio"]])
    b, _ = add_document(index, "/docs/b.pdf", [["nothing here", "nor here"]])
    add_document(index, "/docs/c.pdf", [])  # no chunk: nothing predicted, not exported
    create_task(index, "kind", level="document", multi_label=multi)
    add_model(index, "kind", 1)
    r = invoke("tag", "kind", "--min-score", "0.6", "--json")
    assert json.loads(r.output)["untagged_documents"] == 1
    r = invoke("export", "kind", "--predictions")
    assert r.exit_code == 0, r.output
    first, second = [json.loads(line) for line in r.output.splitlines()]
    assert first["path"] == "/docs/a.pdf" and second["path"] == "/docs/b.pdf"
    assert first["label"] == (["cardio"] if multi else "cardio") and first["score"] >= 0.6
    assert second["label"] == ([] if multi else None)
    assert 0 < second["score"] < 0.6 and second["model_version"] == 1
    if multi:
        assert first["scores"] == {"cardio": first["score"]}
        assert max(second["scores"].values()) == second["score"]
    r = invoke("export", "kind", "--predictions", "--format", "csv")
    rows = r.output.splitlines()
    assert rows[0] == ("path,label,score,scores,model_version" if multi
                       else "path,label,score,model_version")
    assert rows[2].startswith("/docs/b.pdf,,")
    # v2 replaces the document tags: v1's predictions still export, rolled up again
    add_model(index, "kind", 2)
    assert invoke("tag", "kind").exit_code == 0
    r = invoke("export", "kind", "--predictions", "--model", "1")
    again = [json.loads(line) for line in r.output.splitlines()]
    assert again[0]["label"] == first["label"] and again[0]["score"] == pytest.approx(
        first["score"], abs=1e-6)
    assert again[1]["label"] == second["label"]


def test_multi_label_chunk_level(fakes, index, invoke):
    a, _ = add_document(index, "/docs/a.pdf", [["cardio and neuro", "other other other"]])
    create_task(index, "multi", multi_label=True)
    add_model(index, "multi", 1)
    assert invoke("tag", "multi").exit_code == 0
    assert [t["label"] for t in tags_of(index, a, "multi")] == ["cardio", "neuro", "other"]


def test_rule_based_type_gets_a_rules_version_and_entities_are_deduplicated(fakes, index, invoke):
    doc, chunks = add_document(index, "/docs/n.pdf", [
        ["Today Acme Corp hired Alice.", "Then acme  corp hired Bob."],
        ["Later Acme Corp fired Alice."]])
    create_task(index, "people", "capsner", labels=("PER", "ORG"))
    r = invoke("tag", "people", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["model_version"] == 1
    model = index.one("select m.method, m.path from models m join tasks t on t.active_model_id = m.id")
    assert model["method"] == "rules"
    tags = tags_of(index, doc, "people")
    acme = [t for t in tags if t["label"] == "ORG"]
    # "Acme Corp" on two pages; "acme  corp" is not capitalised so the rule misses it
    assert len(acme) == 1
    assert acme[0]["extra"]["text"] == "Acme Corp" and acme[0]["extra"]["count"] == 2
    assert acme[0]["pages"] == [1, 2] and acme[0]["chunks"] == [chunks[0], chunks[2]]
    assert acme[0]["extra"]["start"] == 6 and acme[0]["extra"]["end"] == 15
    people = sorted(t["extra"]["text"] for t in tags if t["label"] == "PER")
    assert people == ["Alice", "Bob"]
    # a second run reuses the rules version
    assert invoke("tag", "people", "--all").exit_code == 0
    assert index.scalar("select count(*) from models") == 1


def test_tag_errors(fakes, index, invoke):
    r = invoke("tag", "nope")
    assert r.exit_code == 1 and "no task 'nope'" in r.output
    create_task(index, "topic")
    r = invoke("tag", "topic")
    assert r.exit_code == 1
    assert "task 'topic' has no trained model yet; train one with 'doctagger train topic'" in r.output
    add_model(index, "topic", 1)
    r = invoke("tag", "topic", "--model", "7")
    assert r.exit_code == 1 and "7" in r.output
    r = invoke("tag", "topic", "--batch-size", "0")
    assert r.exit_code == 2


def test_model_option_tags_with_that_version_and_replaces_tags(corpus, index, invoke):
    add_model(index, "topic", 2)  # now active
    assert invoke("tag", "topic").exit_code == 0
    assert {t["version"] for t in tags_of(index, corpus["a"][0])} == {2}
    r = invoke("tag", "topic", "--model", "1", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["model_version"] == 1
    assert {t["version"] for t in tags_of(index, corpus["a"][0])} == {1}
    assert index.scalar("select count(*) from predictions") == 10  # 5 per version


def test_a_broken_predictor_is_reported(fakes, index, invoke, monkeypatch):
    add_document(index, "/docs/a.pdf", [[CARDIO, NEURO]])
    create_task(index, "topic")
    add_model(index, "topic", 1)
    monkeypatch.setattr(KeywordPredictor, "predict", lambda self, texts: [])
    r = invoke("tag", "topic")
    assert r.exit_code == 1
    assert "returned 0 predictions for 2 texts" in r.output


# -- concurrency and crashes --------------------------------------------------------------
def test_labelling_while_tagging_loses_nothing(fakes, index, index_path, monkeypatch):
    """A labeller writes while tag runs over thousands of chunks: no lock errors, no lost
    writes (WAL, BEGIN IMMEDIATE, busy timeout, short batched transactions)."""
    from doctagger.labels import save_label
    from doctagger.tagging import tag_task

    texts = [f"chunk {i} about cardio" if i % 2 else f"chunk {i} neuro" for i in range(3000)]
    _, ids = add_document(index, "/docs/big.pdf", [texts[i:i + 100] for i in range(0, 3000, 100)])
    create_task(index, "topic")
    add_model(index, "topic", 1)
    slow = KeywordPredictor.predict

    def predict(self, batch):
        time.sleep(0.005)
        return slow(self, batch)

    monkeypatch.setattr(KeywordPredictor, "predict", predict)
    errors, result = [], {}

    def run():
        try:
            with Index(index_path) as other:
                result.update(tag_task(other, "topic", batch_size=50, page_size=500))
        except Exception as exc:  # pragma: no cover - the assertion below shows it
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 30
    while not index.scalar("select count(*) from predictions") and time.monotonic() < deadline:
        time.sleep(0.01)
    task = index.task("topic")
    labelled = ids[::25]
    for chunk_id in labelled:
        save_label(index, task, "cardio", chunk_id=chunk_id)
    assert thread.is_alive(), "tagging ended before the labeller was done: no overlap tested"
    thread.join(timeout=120)
    assert not errors, errors
    assert result["chunks"] == 3000
    assert index.scalar("select count(*) from labels") == len(labelled)
    assert index.scalar("select count(*) from predictions") == 3000


SIGKILL_SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {repo!r})
    from doctagger import plugins
    from doctagger.index import Index
    from doctagger.tagging import tag_task
    from tests.fakes import FakePlugin, KeywordPredictor
    plugins.register_plugin(FakePlugin(), "tag-fakes")
    slow = KeywordPredictor.predict
    def predict(self, texts):
        time.sleep(0.01)
        return slow(self, texts)
    KeywordPredictor.predict = predict
    with Index({index!r}) as index:
        tag_task(index, "topic", batch_size=8, page_size=100)
""")


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_during_tag_leaves_no_duplicates(fakes, index, index_path, tmp_path):
    from doctagger.tagging import tag_task

    add_document(index, "/docs/big.pdf", [[f"text {i} cardio" for i in range(400)]])
    create_task(index, "topic")
    add_model(index, "topic", 1)
    script = tmp_path / "tagger.py"
    script.write_text(SIGKILL_SCRIPT.format(repo=str(REPO), index=str(index_path)))
    env = dict(os.environ, DOCTAGGER_LOAD_PLUGINS="", PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, str(script)], env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if (index.scalar("select count(*) from predictions") or 0) >= 40:
            break
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = index.scalar("select count(*) from predictions")
    assert 0 < done < 400, "the tagger was not killed mid-way"
    summary = tag_task(index, "topic")
    assert summary["chunks"] == 400 - done
    assert index.scalar("select count(*) from predictions") == 400
    assert index.scalar("select count(distinct chunk_id) from predictions") == 400


# -- PDF copies ---------------------------------------------------------------------------
def test_write_pdf_copies_keep_the_originals(fakes, index, invoke, tmp_path):
    import pymupdf

    src = tmp_path / "src"
    a, _ = add_pdf(index, src / "a.pdf", [["Today Acme Corp hired Alice."],
                                          ["Later Acme Corp fired Alice."]])
    b, _ = add_pdf(index, src / "sub" / "a.pdf", [["Nothing but Bob here."]])
    add_document(index, "import:abc", [["Imported text about Globex Corp."]], source="import",
                 fmt="txt")
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in src.rglob("*.pdf")}
    create_task(index, "people", "capsner", labels=("PER", "ORG"))
    out = tmp_path / "out"
    r = invoke("tag", "people", "--write-pdf", out)
    assert r.exit_code == 0, r.output
    assert "Wrote 2 tagged PDF copies" in r.output
    assert "  1 imported text has no PDF file: skipped" in r.output
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in src.rglob("*.pdf")}
    assert after == before  # originals untouched
    copies = sorted(p.name for p in out.iterdir())
    assert copies == ["a-%d.pdf" % b, "a.pdf"]
    doc = pymupdf.open(out / "a.pdf")
    assert "doctagger people" in doc.metadata["subject"]
    annots = [(page.number + 1, annot.info["content"]) for page in doc for annot in page.annots()]
    assert (1, "ORG (people, score 0.90)") in annots and (2, "ORG (people, score 0.90)") in annots
    assert sum(1 for _, c in annots if c.startswith("PER")) == 2  # Alice on each page
    doc.close()


def test_write_pdf_keywords_and_skips(corpus, index, invoke, tmp_path):
    import pymupdf

    path = make_pdf(tmp_path / "c.pdf", [[CARDIO]], metadata={"keywords": "existing"})
    c, _ = add_document(index, path.resolve(), [[CARDIO]],
                        sha256=hashlib.sha256(path.read_bytes()).hexdigest())
    out = tmp_path / "out"
    r = invoke("tag", "topic", "--write-pdf", out, "--json")
    assert r.exit_code == 0, r.output
    pdf = json.loads(r.output)["pdf"]
    assert [w["document_id"] for w in pdf["written"]] == [c]
    assert pdf["written"][0]["keywords"] == "existing, topic=cardio"
    reasons = {s["path"]: s["reason"] for s in pdf["skipped"]}
    assert reasons["/docs/a.pdf"] == "the file is gone; re-ingest its folder"
    copy = pymupdf.open(out / "c.pdf")
    assert copy.metadata["keywords"] == "existing, topic=cardio"
    assert copy.metadata["subject"].startswith("doctagger topic (model v1): cardio (")
    copy.close()
    path.write_bytes(path.read_bytes() + b"\n% changed\n")
    r = invoke("tag", "topic", "--write-pdf", out, "--json")
    reasons = {s["path"]: s["reason"] for s in json.loads(r.output)["pdf"]["skipped"]}
    assert "changed since it was ingested" in reasons[str(path.resolve())]


def test_write_pdf_reports_imported_texts_in_one_line(fakes, index, invoke, tmp_path):
    """QA: 249 imported texts gave ~130 lines 'skipped import:<sha256>: ...'."""
    add_pdf(index, tmp_path / "src" / "a.pdf", [["Today Acme Corp hired Alice."]])
    for n in range(7):
        add_document(index, f"import:{n:064x}", [[f"Imported text {n} about Globex Corp."]],
                     source="import", fmt="txt")
    for n in range(7):
        add_document(index, f"/gone/{n}.pdf", [[f"Gone file {n} of Initech Corp."]])
    create_task(index, "people", "capsner", labels=("PER", "ORG"))
    r = invoke("tag", "people", "--write-pdf", tmp_path / "out")
    assert r.exit_code == 0, r.output
    assert "Wrote 1 tagged PDF copy into" in r.output
    assert "  7 imported texts have no PDF file: skipped\n" in r.output
    assert "import:0000" not in r.output
    assert r.output.count("the file is gone; re-ingest its folder") == 6  # 5, then a count
    assert "  ... and 2 more: the file is gone; re-ingest its folder" in r.output
    r = invoke("tag", "people", "--write-pdf", tmp_path / "out", "--json")
    assert len(json.loads(r.output)["pdf"]["skipped"]) == 14  # --json lists each


def _line_boxes(path):
    """[[x0, y0, x1, y1] of each line] of each page of a PDF made by make_pdf."""
    import pymupdf

    with pymupdf.open(path) as pdf:
        return [[[round(v, 2) for v in line["bbox"]] for block in page.get_text("dict")["blocks"]
                 for line in block.get("lines", [])] for page in pdf]


def test_write_pdf_highlights_a_mention_in_its_own_chunk_only(fakes, index, invoke, tmp_path):
    """QA: one predicted 'Alzheimer' got two highlights, one in another chunk. A mention is
    highlighted among the search hits inside its chunk's box, the one at its place there."""
    import pymupdf

    path = make_pdf(tmp_path / "src" / "a.pdf", [
        ["Today Acme Corp hired Alice.",      # ORG and PER
         "Acme Corp met Acme Corp again."],   # only the second Acme Corp is predicted
        ["Acme Corp won.",                    # not predicted (the first word)
         "Then Acme Corp lost."]])            # predicted; both chunks share one box
    doc, chunks = add_document(index, path.resolve(), [
        ["Today Acme Corp hired Alice.", "Acme Corp met Acme Corp again."],
        ["Acme Corp won.", "Then Acme Corp lost."]],
        sha256=hashlib.sha256(path.read_bytes()).hexdigest())
    (l1, l2), (l3, l4) = _line_boxes(path)
    shared = [min(l3[0], l4[0]), l3[1], max(l3[2], l4[2]), l4[3]]  # a paragraph cut in two
    with index.write() as db:
        for chunk, box in zip(chunks, [l1, l2, shared, shared]):
            db.execute("update chunks set bbox = ? where id = ?", [json.dumps(box), chunk])
    create_task(index, "people", "capsner", labels=("PER", "ORG"))
    r = invoke("tag", "people", "--write-pdf", tmp_path / "out", "--json")
    assert r.exit_code == 0, r.output
    written = json.loads(r.output)["pdf"]["written"][0]
    assert written["highlights"] == 4  # not 5: Acme Corp once per mention, in its chunk
    assert written["entities_highlighted"] == 2
    assert written["subject"] == ("doctagger people (model v1): no class tags; 2 entities "
                                  "highlighted (4 highlights)")
    with pymupdf.open(tmp_path / "out" / "a.pdf") as copy:
        found = sorted((page.number + 1, round(annot.rect.y0), round(annot.rect.x0),
                        annot.info["content"].split()[0])
                       for page in copy for annot in page.annots())
    line = {1: round(l1[1]), 2: round(l2[1])}
    assert [(p, y, label) for p, y, _, label in found] == [
        (1, pytest.approx(line[1], abs=2), "ORG"), (1, pytest.approx(line[1], abs=2), "PER"),
        (1, pytest.approx(line[2], abs=2), "ORG"), (2, pytest.approx(round(l4[1]), abs=2), "ORG")]
    assert found[2][2] > round(l2[0]) + 30  # the second Acme Corp of line 2, not the first


def test_tag_help_has_examples(invoke):
    r = invoke("tag", "--help")
    assert r.exit_code == 0
    assert "--write-pdf" in r.output and "doctagger tag topic" in r.output


def test_progress_bar_path_on_a_terminal(corpus, index, invoke, monkeypatch):
    from doctagger.cli import tag as tag_cli

    monkeypatch.setattr(tag_cli, "is_tty", lambda: True)
    r = invoke("tag", "topic")
    assert r.exit_code == 0, r.output
    assert "Tagged 5 chunks of 2 documents" in r.output



def test_models_use_rollback_rebuilds_tags_on_next_tag(invoke, index, corpus):
    """After `models use` goes back to a version that already tagged everything, `tag`
    rebuilds the document tags from that version's predictions."""
    v1 = index.scalar("select active_model_id from tasks where name = 'topic'")
    assert invoke("tag", "topic").exit_code == 0
    v2 = add_model(index, "topic", 2)
    assert invoke("tag", "topic").exit_code == 0
    assert {r["model_id"] for r in index.query("select model_id from document_tags")} == {v2}
    r = invoke("models", "use", "topic", "1")
    assert r.exit_code == 0, r.output
    assert r.output == ("topic: v1 is now active (was v2).\nDocument tags are v2's until you "
                        "run 'doctagger tag topic' (it rebuilds them from v1).\n")
    result = invoke("tag", "topic")
    assert result.exit_code == 0, result.output
    assert "rebuilt the tags of 2 documents" in result.output
    assert {r["model_id"] for r in index.query("select model_id from document_tags")} == {v1}
    r = invoke("models", "use", "topic", "1")  # the tags are v1's now: nothing to say
    assert r.output == "topic: v1 is now active.\n"


# -- what tag checks before it writes -----------------------------------------------------
BLAME = "the predictor of task type 'kwclass' (plugin 'tag-fakes') returned "
REPORT = "; report this to the plugin's authors"


def _predicting(monkeypatch, make):
    """KeywordPredictor returns ``make(prediction)`` for each text instead."""
    good = KeywordPredictor.predict
    monkeypatch.setattr(KeywordPredictor, "predict",
                        lambda self, texts: [make(p) for p in good(self, texts)])


@pytest.mark.parametrize("make, problem", [
    (lambda p: Prediction("CARDIO", p.score),
     "'CARDIO', which validate() refuses (unknown label 'CARDIO')"),
    (lambda p: Prediction(p.value, 100),
     "score 100 (for 'cardio'); a score is a number from 0 to 1"),
    (lambda p: Prediction(p.value, float("nan")),
     "score nan (for 'cardio'); a score is a number from 0 to 1"),
    (lambda p: Prediction(p.value, "0.9"),
     "score '0.9' (for 'cardio'); a score is a number from 0 to 1"),
    (lambda p: {"value": p.value, "score": 0.5},
     "dict {'value': 'cardio', 'score': 0.5}, not a Prediction (an object with value and "
     "score)"),
    (lambda p: p.value, "str 'cardio', not a Prediction (an object with value and score)"),
    (lambda p: Prediction(p.value, p.score, {"cardio": 7.5}),
     "the score 7.5 for 'cardio' in scores; a score is a number from 0 to 1"),
    (lambda p: Prediction(p.value, p.score, {"cardio": float("nan")}),
     "the score nan for 'cardio' in scores; a score is a number from 0 to 1"),
    (lambda p: Prediction(p.value, p.score, {"CARDIO": 0.5}),
     "scores for 'CARDIO', which is not a label of task 'topic'"),
])
def test_a_bad_prediction_stops_tag_and_blames_the_plugin(fakes, index, invoke, monkeypatch,
                                                          make, problem):
    add_document(index, "/docs/a.pdf", [["cardio " * 9, "a cardio note"]])
    create_task(index, "topic")
    add_model(index, "topic", 1)
    _predicting(monkeypatch, make)
    r = invoke("tag", "topic")
    assert r.exit_code == 1
    assert BLAME + problem in r.output and r.output.rstrip().endswith(REPORT)
    assert "unexpected error" not in r.output
    assert index.scalar("select count(*) from predictions") == 0
    assert index.scalar("select count(*) from document_tags") == 0


def test_a_multi_label_value_must_be_normalised(fakes, index, invoke, monkeypatch):
    add_document(index, "/docs/a.pdf", [["cardio and neuro"]])
    create_task(index, "multi", multi_label=True)
    add_model(index, "multi", 1)
    _predicting(monkeypatch, lambda p: Prediction(sorted(p.value, reverse=True), p.score))
    r = invoke("tag", "multi")
    assert r.exit_code == 1
    assert (BLAME + "['neuro', 'cardio'] for a multi-label task; return the normalised value "
            "['cardio', 'neuro'] (what validate() gives)" + REPORT) in r.output
    _predicting(monkeypatch, lambda p: Prediction("cardio", p.score))
    r = invoke("tag", "multi")
    assert r.exit_code == 1 and BLAME + "'cardio', which validate() refuses" in r.output


def test_no_answer_is_for_single_label_tasks_only(fakes, index, invoke, monkeypatch):
    """A multi-label 'none' is [] (what export and import know); None would be stored as
    null and break the export."""
    add_document(index, "/docs/a.pdf", [["cardio and neuro"]])
    create_task(index, "multi", multi_label=True)
    add_model(index, "multi", 1)
    _predicting(monkeypatch, lambda p: Prediction(None, 0.0))
    r = invoke("tag", "multi")
    assert r.exit_code == 1
    assert (BLAME + "None; return [] when none of the labels applies (None, 'no answer', is "
            "for single-label tasks)" + REPORT) in r.output
    assert index.scalar("select count(*) from predictions") == 0


def test_only_the_bad_batch_is_not_written(fakes, index, monkeypatch):
    from doctagger.errors import PluginError
    from doctagger.tagging import tag_task

    add_document(index, "/docs/a.pdf", [[f"chunk {i} cardio" for i in range(6)]])
    create_task(index, "topic")
    add_model(index, "topic", 1)
    good = KeywordPredictor.predict
    calls = []

    def predict(self, texts):
        calls.append(texts)
        out = good(self, texts)
        if len(calls) == 2:
            out[-1] = Prediction("CARDIO", 0.9)
        return out

    monkeypatch.setattr(KeywordPredictor, "predict", predict)
    with pytest.raises(PluginError, match="returned 'CARDIO'"):
        tag_task(index, "topic", batch_size=2)
    assert index.scalar("select count(*) from predictions") == 2  # the first batch only
    monkeypatch.setattr(KeywordPredictor, "predict", good)
    assert tag_task(index, "topic")["chunks"] == 4  # the next run carries on


def test_no_answer_and_span_scores_are_stored(fakes, index, invoke, monkeypatch):
    """None is "no answer"; a predicted span may carry its own score (validate knows
    nothing of it), and it is stored with the span."""
    from tests.fakes import CapsPredictor

    add_document(index, "/docs/a.pdf", [["cardio notes", "Met Tim Cook"]])
    create_task(index, "topic")
    add_model(index, "topic", 1)
    _predicting(monkeypatch, lambda p: Prediction(None, 0.0) if p.value == "other" else p)
    r = invoke("tag", "topic", "--json")
    assert r.exit_code == 0, r.output
    assert sorted(p["value"] for p in index.query("select value from predictions")) == [
        '"cardio"', "null"]
    create_task(index, "people", type_="capsner", labels=("PER", "ORG"))
    assert invoke("tag", "people").exit_code == 0
    spans = json.loads(index.scalar("select p.value from predictions p join tasks t on "
                                    "t.id = p.task_id where t.name = 'people' and "
                                    "p.value != '[]'"))
    assert spans == [{"start": 4, "end": 7, "label": "PER", "score": 0.6},
                     {"start": 8, "end": 12, "label": "PER", "score": 0.6}]
    monkeypatch.setattr(CapsPredictor, "predict", lambda self, texts: [
        Prediction([{"start": 0, "end": 3, "label": "PER", "score": "high"}], 0.5)
        for _ in texts])
    r = invoke("tag", "people", "--all")
    assert r.exit_code == 1
    assert ("the predictor of task type 'capsner' (plugin 'tag-fakes') returned a span with "
            "score 'high'; a score is a number from 0 to 1" + REPORT) in r.output
    monkeypatch.setattr(CapsPredictor, "predict", lambda self, texts: [
        Prediction([{"start": 0, "end": len(t) + 5, "label": "PER"}], 0.5) for t in texts])
    r = invoke("tag", "people", "--all")
    assert r.exit_code == 1
    assert "returned the span {'start': 0, 'end': " in r.output
    assert "which ends past the end of its text (" in r.output


def test_what_cannot_be_stored_or_listed_blames_the_plugin(fakes, index, invoke, monkeypatch):
    import numpy as np

    from tests.fakes import CapsPredictor

    add_document(index, "/docs/a.pdf", [["Met Tim Cook"]])
    create_task(index, "people", type_="capsner", labels=("PER",))
    monkeypatch.setattr(CapsPredictor, "predict", lambda self, texts: [
        Prediction([{"start": np.int64(4), "end": np.int64(7), "label": "PER"}], 0.5)
        for _ in texts])
    r = invoke("tag", "people")
    assert r.exit_code == 1
    assert ("the predictor of task type 'capsner' (plugin 'tag-fakes') returned a prediction "
            "that cannot be stored (TypeError: Object of type int64 is not JSON serializable)"
            + REPORT) in r.output
    assert index.scalar("select count(*) from predictions") == 0
    monkeypatch.setattr(CapsPredictor, "predict", lambda self, texts: None)
    r = invoke("tag", "people")
    assert r.exit_code == 1
    assert ("the predictor of task type 'capsner' (plugin 'tag-fakes') returned None, "
            "not a list of predictions" + REPORT) in r.output


def test_a_generator_of_good_predictions_is_fine(corpus, index, invoke, monkeypatch):
    good = KeywordPredictor.predict
    monkeypatch.setattr(KeywordPredictor, "predict",
                        lambda self, texts: (p for p in good(self, texts)))
    r = invoke("tag", "topic")
    assert r.exit_code == 0, r.output
    assert index.scalar("select count(*) from predictions") == 5


def test_ctrl_c_says_how_to_carry_on(corpus, invoke, monkeypatch):
    from doctagger import tagging

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tagging, "tag_task", interrupted)
    r = invoke("tag", "topic")
    assert r.exit_code == 1
    assert "Interrupted: the predictions written so far are kept; run 'doctagger tag topic' " \
           "again to carry on from there" in r.output
    assert "Aborted!" in r.output and "Traceback" not in r.output
    r = invoke("tag", "topic", "--model", "1", "--min-score", "0.7")
    assert "run 'doctagger tag topic --model 1 --min-score 0.7' again to carry on" in r.output
    r = invoke("tag", "topic", "--all")
    assert "run 'doctagger tag topic --all' again to re-tag everything (it starts over)" \
        in r.output


def test_a_hit_that_wraps_onto_the_next_line_is_one_occurrence():
    """PDF text search gives one quad per line of a hit: 'New' / 'York' is one occurrence,
    so the next 'New York' is the second, not the third."""
    import pymupdf

    from doctagger.pdf_writeback import group_hits

    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_text((72, 100), "We flew to New", fontsize=12)
    page.insert_text((72, 116), "York and then New York again.", fontsize=12)
    quads = page.search_for("New York", quads=True)
    assert len(quads) == 3
    groups = group_hits(page, quads, "New York")
    assert [len(g) for g in groups] == [2, 1]
    assert groups[1][0].rect.x0 > 140  # the second occurrence, on the second line
    assert [len(g) for g in group_hits(page, page.search_for("York", quads=True), "York")] \
        == [1, 1]
