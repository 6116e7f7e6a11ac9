"""docs/search filters on document tags (--tag, --entity, --min-score) and tags in show."""
from __future__ import annotations

import json

import pytest

from tests.fakes import CARDIO, NEURO, add_document, add_model, create_task


@pytest.fixture
def tagged(fakes, index, invoke):
    """Three documents tagged for a classification task and a rule-based NER task."""
    a = add_document(index, "/docs/a.pdf", [[CARDIO, "Today Acme Corp hired Alice."],
                                            ["Later Acme Corp fired Alice."]])
    b = add_document(index, "/docs/b.pdf", [[NEURO, "Then Globex Corp sued Bob."]])
    c = add_document(index, "/docs/c.pdf", [["a cardio or neuro note"]])
    create_task(index, "topic")
    add_model(index, "topic", 1)
    create_task(index, "people", "capsner", labels=("PER", "ORG"))
    for task in ("topic", "people"):
        r = invoke("tag", task)
        assert r.exit_code == 0, r.output
    return {"a": a, "b": b, "c": c}


def doc_ids(output):
    return [d["id"] for d in json.loads(output)]


def test_docs_tag_filter(tagged, invoke):
    a, b, c = (tagged[k][0] for k in "abc")
    r = invoke("docs", "--tag", "topic=cardio", "--json")
    assert r.exit_code == 0, r.output
    assert doc_ids(r.output) == [a, c]
    r = invoke("docs", "--tag", "topic=cardio", "--min-score", "0.7", "--json")
    assert doc_ids(r.output) == [a]  # c's cardio tag scores 0.48
    r = invoke("docs", "--tag", "topic=cardio", "--tag", "topic=neuro", "--json")
    assert doc_ids(r.output) == []
    r = invoke("docs", "--tag", "topic=neuro")
    assert "/docs/b.pdf" in r.output and "/docs/a.pdf" not in r.output


def test_docs_entity_filter(tagged, invoke):
    a, b = tagged["a"][0], tagged["b"][0]
    r = invoke("docs", "--entity", "people=ORG", "--json")
    assert doc_ids(r.output) == [a, b]
    r = invoke("docs", "--entity", "people=ORG:globex", "--json")
    assert doc_ids(r.output) == [b]
    r = invoke("docs", "--entity", "people=PER:alice", "--entity", "people=ORG:acme corp", "--json")
    assert doc_ids(r.output) == [a]
    r = invoke("docs", "--entity", "people=PER", "--min-score", "0.8", "--json")
    assert doc_ids(r.output) == []  # the fake scores people 0.6
    r = invoke("docs", "--entity", "people=ORG:100%", "--json")
    assert doc_ids(r.output) == []  # % is literal, not a wildcard


def test_search_tag_and_entity_filters(tagged, invoke):
    a, a_chunks = tagged["a"]
    b, b_chunks = tagged["b"]
    r = invoke("search", "cardio", "--tag", "topic=cardio", "--json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert {row["document_id"] for row in rows} == {a, tagged["c"][0]}
    r = invoke("search", "cardio", "--tag", "topic=cardio", "--min-score", "0.7", "--json")
    assert {row["document_id"] for row in json.loads(r.output)} == {a}
    # --entity without TEXT to search: the chunks where the entity was found
    r = invoke("search", "--entity", "people=ORG:acme", "--json")
    assert [row["chunk_id"] for row in json.loads(r.output)] == [a_chunks[1], a_chunks[2]]
    r = invoke("search", "sued", "--entity", "people=PER:bob", "--json")
    assert [row["chunk_id"] for row in json.loads(r.output)] == [b_chunks[1]]
    r = invoke("search", "--entity", "people=PER:bob")
    assert "/docs/b.pdf  p1" in r.output and "Globex" in r.output


def test_filter_errors(tagged, invoke):
    r = invoke("search", "x", "--tag", "topic")
    assert r.exit_code == 2 and "expected TASK=LABEL, got 'topic'" in r.output
    r = invoke("search", "x", "--entity", "people=")
    assert r.exit_code == 2 and "expected TASK=LABEL" in r.output
    r = invoke("docs", "--entity", "nope=ORG")
    assert r.exit_code == 1 and "no task 'nope'" in r.output
    r = invoke("search")
    assert r.exit_code == 1 and "give TEXT to search for" in r.output


def test_show_lists_tags_with_score_version_and_pages(tagged, invoke):
    a = tagged["a"][0]
    r = invoke("show", a)
    assert r.exit_code == 0, r.output
    assert "Tags:" in r.output
    assert "people=ORG 'Acme Corp' x2  score 0.90  model v1  pages 1, 2" in r.output
    assert "topic=cardio  score 0.94  model v1  pages 1 (chunks" in r.output
    r = invoke("show", a, "--json")
    tags = json.loads(r.output)["tags"]
    acme = next(t for t in tags if t["extra"].get("text") == "Acme Corp")
    assert acme["pages"] == [1, 2] and acme["model_version"] == 1 and acme["extra"]["count"] == 2


def test_entity_search_and_highlights_do_not_depend_on_supporting_chunks(
        fakes, index, invoke, tmp_path):
    """A task type's roll-up may keep only a few supporting chunks per entity; search and
    PDF highlights still find every mention (from the predictions)."""
    import pymupdf

    from tests.fakes import add_pdf

    pages = [[f"On day {i} Acme Corp filed."] for i in range(1, 6)]
    doc, chunks = add_pdf(index, tmp_path / "acme.pdf", pages)
    create_task(index, "people", "capsner", labels=("PER", "ORG"))
    assert invoke("tag", "people").exit_code == 0
    index.db.execute("update document_tags set chunks = '[]', pages = '[1]'")
    r = invoke("search", "--entity", "people=ORG:acme", "--json")
    assert [row["chunk_id"] for row in json.loads(r.output)] == chunks
    r = invoke("tag", "people", "--write-pdf", tmp_path / "out")
    assert r.exit_code == 0, r.output
    copy = pymupdf.open(tmp_path / "out" / "acme.pdf")
    assert [len(list(page.annots())) for page in copy] == [1, 1, 1, 1, 1]
    copy.close()


def test_search_tag_of_a_chunk_level_task_keeps_the_chunks_with_that_label(tagged, invoke):
    """Document a is tagged cardio through its first chunk; its other chunks were labelled
    otherwise by the model, so a passage search keeps only the cardio chunk."""
    a, a_chunks = tagged["a"]
    c, c_chunks = tagged["c"]
    r = invoke("search", "--tag", "topic=cardio", "--limit", "50", "--json")
    assert r.exit_code == 0, r.output
    got = {row["chunk_id"] for row in json.loads(r.output)}
    assert a_chunks[0] in got and c_chunks[0] in got
    assert not got & {a_chunks[1], a_chunks[2]}  # a's chunks about Acme are not cardio
    # `docs --tag` still filters documents: a carries the tag
    assert a in doc_ids(invoke("docs", "--tag", "topic=cardio", "--json").output)


@pytest.mark.parametrize("command", ["docs", "search"])
def test_filters_refuse_unknown_labels_and_scores(tagged, invoke, command):
    """A typo in a filter is an error that lists the labels, not an empty answer."""
    r = invoke(command, "--tag", "topic=Cardio")
    assert r.exit_code == 1
    assert "task 'topic' has no label 'Cardio' (labels: cardio, neuro, other); did you mean " \
           "--tag topic=cardio?" in r.output
    r = invoke(command, "--entity", "people=animal")
    assert r.exit_code == 1 and "task 'people' has no label 'animal' (labels: PER, ORG)" \
        in r.output
    r = invoke(command, "--entity", "topic=cardio")
    assert r.exit_code == 1
    assert "task 'topic' (kwclass) has no entities; filter it with --tag topic=LABEL" in r.output
    r = invoke(command, "--tag", "topic=cardio", "--min-score", "2")
    assert r.exit_code == 2 and "--min-score" in r.output and "0<=x<=1" in r.output


def test_show_renders_a_no_answer_prediction(tagged, invoke, index):
    a, chunks = tagged["a"]
    with index.write() as db:
        db.execute("update predictions set value = 'null', score = 0 where chunk_id = ? and "
                   "task_id = (select id from tasks where name = 'topic')", [chunks[0]])
    r = invoke("show", a)
    assert r.exit_code == 0, r.output
    assert "-> topic: (no answer) (0.00, v1" in r.output and "topic: null" not in r.output
