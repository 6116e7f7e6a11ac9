"""import / export: matching records to chunks and documents, all-or-nothing imports,
round trips, predictions."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from doctagger.index import Index, now
from tests.fakes import FakeClassNERPlugin as FakePlugin
from tests.fakes import add_text_document as add_document


@pytest.fixture
def fakes(monkeypatch, register_plugin):
    from doctagger import plugins

    monkeypatch.setenv("DOCTAGGER_LOAD_PLUGINS", "")
    plugins.reset()
    register_plugin(FakePlugin(), "fakes")


@pytest.fixture
def topic(fakes, invoke):
    r = invoke("tasks", "create", "topic", "--type", "fakeclass", "--labels", "legal,medical,money")
    assert r.exit_code == 0, r.output
    return "topic"


@pytest.fixture
def ents(fakes, invoke):
    r = invoke("tasks", "create", "ents", "--type", "fakener", "--labels", "PER,ORG,LOC")
    assert r.exit_code == 0, r.output
    return "ents"


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def labels(index, task="topic"):
    """{chunk text or 'doc:<path>': value} of the task's labels."""
    rows = index.query(
        "select l.target, l.value, l.source, c.text, d.path from labels l "
        "join tasks t on t.id = l.task_id left join chunks c on c.id = l.chunk_id "
        "join documents d on d.id = l.document_id where t.name = ? order by l.id", [task])
    return {(r["text"] if r["target"] == "chunk" else "doc:" + r["path"]): json.loads(r["value"])
            for r in rows}


def counts(index):
    return {t: index.scalar(f"select count(*) from {t}") for t in ("documents", "chunks", "labels")}


# -- CSV, chunk-level -------------------------------------------------------------------
def test_csv_labels_matching_chunks_and_new_texts(topic, invoke, index, tmp_path):
    add_document(index, "/d/a.pdf", ["This licence covers usage rights.", "Vital signs normal."])
    add_document(index, "/d/b.pdf", ["Vital  signs\nnormal."])  # same words, other spacing
    f = write(tmp_path / "labels.csv",
              "text,label\n"
              "This licence   covers usage rights.,legal\n"
              "Vital signs normal.,medical\n"
              '"Revenue rose, by 15%.",money\n')
    r = invoke("import", "topic", f)
    assert r.exit_code == 0, r.output
    assert r.output.strip() == ("Imported 4 labels into 'topic' (4 new, 0 updated); "
                                "1 new document.")
    got = labels(index)
    assert got == {"This licence covers usage rights.": "legal", "Vital signs normal.": "medical",
                   "Vital  signs\nnormal.": "medical", "Revenue rose, by 15%.": "money"}
    new_doc = index.one("select * from documents order by id desc limit 1")
    assert new_doc["source"] == "import"
    assert all(r["source"] == "import" for r in index.query("select source from labels"))

    # The same file again: nothing changes, and the summary says so.
    r = invoke("import", "topic", f, "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert (out["labels"], out["new"], out["updated"], out["unchanged"],
            out["documents_created"]) == (4, 0, 0, 4, 0)
    assert out["format"] == "csv" and out["encoding"] == "utf-8"


def test_reimport_keeps_human_labels_that_agree_and_updates_others(topic, invoke, index,
                                                                   tmp_path):
    from doctagger.labels import save_label

    _, (c1, c2) = add_document(index, "/d/a.pdf", ["one", "two"])
    task = index.task("topic")
    save_label(index, task, "legal", chunk_id=c1)
    save_label(index, task, "legal", chunk_id=c2)
    f = write(tmp_path / "l.csv", "text,label\none,legal\ntwo,money\n")
    r = invoke("import", "topic", f, "--source", "human")
    assert r.exit_code == 0, r.output
    assert "Imported 2 labels into 'topic' (0 new, 1 updated, 1 unchanged); 0 new documents." \
        in r.output
    assert labels(index) == {"one": "legal", "two": "money"}


def test_multi_label_csv_with_separator(fakes, invoke, index, tmp_path):
    invoke("tasks", "create", "topics", "--type", "fakeclass", "--labels", "a,b,c",
           "--multi-label")
    add_document(index, "/d/a.pdf", ["first", "second"])
    f = write(tmp_path / "m.csv", "text,label\nfirst,b|a\nsecond,c\n")
    r = invoke("import", "topics", f)
    assert r.exit_code == 0, r.output
    assert labels(index, "topics") == {"first": ["a", "b"], "second": ["c"]}
    f = write(tmp_path / "m2.csv", "text,label\nfirst,c;a\n")
    r = invoke("import", "topics", f, "--separator", ";")
    assert r.exit_code == 0, r.output
    assert labels(index, "topics")["first"] == ["a", "c"]
    r = invoke("export", "topics", "--format", "csv", "--separator", ";")
    assert r.output == "text,label\nfirst,a;c\nsecond,c\n"


def test_duplicates_and_conflicts_are_reported(topic, invoke, index, tmp_path):
    add_document(index, "/d/a.pdf", ["one", "two"])
    f = write(tmp_path / "l.csv", "text,label\none,legal\none,legal\ntwo,legal\ntwo,money\n")
    r = invoke("import", "topic", f)
    assert r.exit_code == 0, r.output
    assert "lines: 1 duplicate, 1 conflicting" in r.output
    assert "l.csv: 1 record(s) give a different label to an item an earlier line labelled; " \
           "the later line wins: line 5 (after line 4)" in r.output
    assert labels(index) == {"one": "legal", "two": "money"}


def test_a_record_matching_many_chunks_counts_once(topic, invoke, index, tmp_path):
    """A text found in 3 chunks: its conflicting record is one record, listed once."""
    add_document(index, "/d/a.pdf", ["same text", "same text"])
    add_document(index, "/d/b.pdf", ["same text"])
    f = write(tmp_path / "l.csv", "text,label\nsame text,legal\nsame text,legal\n"
                                  "same text,money\n")
    r = invoke("import", "topic", f)
    assert r.exit_code == 0, r.output
    assert "lines: 1 duplicate, 1 conflicting" in r.output
    assert "l.csv: 1 record(s) give a different label to an item an earlier line labelled; " \
           "the later line wins: line 4 (after line 2). Check these labels" in r.output


# -- all or nothing -----------------------------------------------------------------------
@pytest.mark.parametrize("content, message", [
    ("text,label\nfine,legal\nalso fine,medical\nbad,legal,extra\n",
     "line 4: expected 2 columns (text,label), found 3"),
    ("text,label\nfine,legal\nnew text here,medical\nthird,cooking\n",
     "line 4: unknown label 'cooking'; the task's labels are legal, medical, money"),
    ("text,label\nfine,legal\n\n\nnew text,\n", "line 5: empty 'label' cell"),
    ("words,label\nfine,legal\n", "line 1: expected a header row with columns text,label"),
    ("text,label\nfine,legal\n,medical\n", "line 3: this row has no text and no path"),
])
def test_a_bad_line_imports_nothing(topic, invoke, index, tmp_path, content, message):
    add_document(index, "/d/a.pdf", ["fine"])
    before = counts(index)
    f = write(tmp_path / "labels.csv", content)
    r = invoke("import", "topic", f)
    assert r.exit_code == 1, r.output
    assert f"Error: {f}, {message}" in r.output
    assert counts(index) == before  # no label, and no imported document either


def test_jsonl_bad_line_and_chunk_task_given_paths(topic, invoke, index, tmp_path):
    add_document(index, "/d/a.pdf", ["fine"])
    f = write(tmp_path / "l.jsonl", '{"text": "fine", "label": "legal"}\n{"text": "x", label}\n')
    r = invoke("import", "topic", f)
    assert r.exit_code == 1 and f"{f}, line 2: invalid JSON" in r.output
    f = write(tmp_path / "p.csv", "path,label\n/d/a.pdf,legal\n")
    r = invoke("import", "topic", f)
    assert r.exit_code == 1
    assert f"{f}, line 2: this record names a document (/d/a.pdf) but task 'topic' labels " \
           "chunks" in r.output
    assert counts(index)["labels"] == 0


def test_encodings_blank_lines_and_bom(topic, invoke, index, tmp_path):
    add_document(index, "/d/a.pdf", ["Café résumé", "naïve"])
    f = write(tmp_path / "latin.csv", "text,label\r\nCafé résumé,legal\r\n\r\n", "latin-1")
    r = invoke("import", "topic", f)
    assert r.exit_code == 0, r.output
    assert "not valid UTF-8 (first bad byte on line 2)" in r.output
    assert labels(index) == {"Café résumé": "legal"}
    f = tmp_path / "bom.csv"
    f.write_bytes(b"\xef\xbb\xbftext,label\n\nna\xc3\xafve,medical\n\n")
    r = invoke("import", "topic", f, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["encoding"] == "utf-8-sig"
    assert labels(index)["naïve"] == "medical"


def test_dry_run_writes_nothing(topic, invoke, index, tmp_path):
    add_document(index, "/d/a.pdf", ["fine"])
    before = counts(index)
    f = write(tmp_path / "l.csv", "text,label\nfine,legal\nbrand new text,money\n")
    r = invoke("import", "topic", f, "--dry-run")
    assert r.exit_code == 0, r.output
    assert "Would import 2 labels into 'topic' (2 new, 0 updated); 1 new document." in r.output
    assert "Dry run: nothing was written." in r.output
    assert counts(index) == before
    r = invoke("import", "topic", f, "--dry-run", "--json")
    assert json.loads(r.output)["dry_run"] is True and counts(index) == before


def test_import_usage_errors(topic, invoke, tmp_path):
    r = invoke("import", "topic", tmp_path / "missing.csv")  # a usage error, as for ingest
    assert r.exit_code == 2 and "Invalid value for 'FILE'" in r.output
    assert "missing.csv' does not exist" in r.output
    r = invoke("import", "topic", tmp_path)
    assert r.exit_code == 2 and "is a directory" in r.output
    f = write(tmp_path / "l.csv", "text,label\na,legal\n")
    r = invoke("import", "nope", f)
    assert r.exit_code == 1 and "no task 'nope' in the index" in r.output
    r = invoke("import", "topic", f, "--source", "robot")
    assert r.exit_code == 2
    f = write(tmp_path / "l.data", "text,label\na,legal\n")
    r = invoke("import", "topic", f)
    assert r.exit_code == 1 and "cannot tell the format of l.data" in r.output
    r = invoke("import", "topic", f, "--format", "csv")
    assert r.exit_code == 0, r.output
    f = write(tmp_path / "x.conll", "Alice\tB-PER\n")
    r = invoke("import", "topic", f)
    assert r.exit_code == 1 and "CoNLL files hold NER tags" in r.output


# -- document-level tasks -----------------------------------------------------------------
def test_document_paths_match_in_order(fakes, invoke, index, tmp_path, monkeypatch):
    invoke("tasks", "create", "kind", "--type", "fakeclass", "--labels", "memo,invoice",
           "--level", "document")
    folder = tmp_path / "docs"
    folder.mkdir()
    a, _ = add_document(index, folder / "a.pdf", ["a"])
    b, _ = add_document(index, "/elsewhere/reports/q3.pdf", ["b"])
    c, _ = add_document(index, "/x/c.pdf", ["c"], sha256="ab" * 32)
    d, _ = add_document(index, "/x/d.pdf", ["d"])
    monkeypatch.chdir(tmp_path)
    f = write(folder / "kinds.csv",
              "path,label\n"
              "a.pdf,memo\n"                # relative to the import file's folder
              "reports/q3.pdf,invoice\n"    # a unique suffix
              f"{'ab' * 32},invoice\n"      # sha256
              "/x/d.pdf,memo\n")            # exact
    r = invoke("import", "kind", f)
    assert r.exit_code == 0, r.output
    assert "Imported 4 labels" in r.output
    assert labels(index, "kind") == {f"doc:{folder / 'a.pdf'}": "memo",
                                     "doc:/elsewhere/reports/q3.pdf": "invoice",
                                     "doc:/x/c.pdf": "invoice", "doc:/x/d.pdf": "memo"}
    f = write(tmp_path / "cwd.csv", "path,label\ndocs/a.pdf,invoice\n")  # relative to cwd
    assert invoke("import", "kind", f).exit_code == 0
    assert labels(index, "kind")[f"doc:{folder / 'a.pdf'}"] == "invoice"

    before = counts(index)
    f = write(tmp_path / "bad.csv", "path,label\n/x/d.pdf,invoice\nnowhere.pdf,memo\n")
    r = invoke("import", "kind", f)
    assert r.exit_code == 1
    assert f"{f}, line 3: no document in the index matches the path 'nowhere.pdf'" in r.output
    assert counts(index) == before and labels(index, "kind")["doc:/x/d.pdf"] == "memo"
    add_document(index, "/y/c.pdf", ["c2"])
    f = write(tmp_path / "amb.csv", "path,label\nc.pdf,memo\n")
    r = invoke("import", "kind", f)
    assert r.exit_code == 1 and "line 2: the path 'c.pdf' matches several documents" in r.output


def test_document_text_records_become_imported_documents(fakes, invoke, index, tmp_path):
    invoke("tasks", "create", "kind", "--type", "fakeclass", "--labels", "memo,invoice",
           "--level", "document")
    f = write(tmp_path / "k.jsonl", '{"text": "Pay 10 EUR by Friday.", "label": "invoice"}\n')
    r = invoke("import", "kind", f)
    assert r.exit_code == 0, r.output
    assert "1 new document" in r.output
    doc = index.one("select * from documents")
    assert doc["source"] == "import"
    assert index.one("select target, document_id from labels") == {"target": "document",
                                                                   "document_id": doc["id"]}


# -- NER ----------------------------------------------------------------------------------
def test_jsonl_spans_prodigy_and_doccano_move_to_chunk_coordinates(ents, invoke, index,
                                                                   tmp_path):
    add_document(index, "/d/a.pdf", ["Alice  Smith\nworks at Acme.", "Bob is in Paris."])
    f = write(tmp_path / "e.jsonl",
              '{"text": "Alice Smith works at Acme.", "spans": [{"start": 0, "end": 11, '
              '"label": "PER", "token_start": 0}, {"start": 21, "end": 25, "label": "ORG"}]}\n'
              '\n'
              '{"text": "Bob is in Paris.", "label": [[10, 15, "LOC"], [0, 3, "PER"]]}\n'
              '{"text": "Nobody here.", "spans": [], "answer": "reject"}\n')
    r = invoke("import", "ents", f)
    assert r.exit_code == 0, r.output
    assert "lines: 1 skipped" in r.output
    got = labels(index, "ents")
    assert got["Alice  Smith\nworks at Acme."] == [{"start": 0, "end": 12, "label": "PER"},
                                                   {"start": 22, "end": 26, "label": "ORG"}]
    assert got["Bob is in Paris."] == [{"start": 0, "end": 3, "label": "PER"},
                                       {"start": 10, "end": 15, "label": "LOC"}]
    f = write(tmp_path / "bad.jsonl", '{"text": "Bob is in Paris.", "spans": [[0, 3, "CAT"]]}\n')
    r = invoke("import", "ents", f)
    assert r.exit_code == 1 and f"{f}, line 1: unknown entity label 'CAT'" in r.output


@pytest.mark.parametrize("tags, expected", [
    # IO (no B-): adjacent tokens of one type form one entity
    (["I-PER", "I-PER", "O", "O", "I-ORG", "I-ORG"],
     [(0, 11, "PER"), (21, 30, "ORG")]),
    # IOB1: B- only between two adjacent entities of one type
    (["I-PER", "B-PER", "O", "O", "I-ORG", "I-ORG"],
     [(0, 5, "PER"), (6, 11, "PER"), (21, 30, "ORG")]),
    # BIO
    (["B-PER", "I-PER", "O", "O", "B-ORG", "I-ORG"],
     [(0, 11, "PER"), (21, 30, "ORG")]),
])
def test_conll_schemes_become_spans(ents, invoke, index, tmp_path, tags, expected):
    add_document(index, "/d/a.pdf", ["Alice Smith works at Acme Corp"])
    tokens = "Alice Smith works at Acme Corp".split()
    f = write(tmp_path / "e.conll", "-DOCSTART- O\n\n" + "".join(
        f"{t} NNP O {g}\n" for t, g in zip(tokens, tags)) + "\n")
    r = invoke("import", "ents", f)
    assert r.exit_code == 0, r.output
    assert "0 new documents" in r.output
    got = labels(index, "ents")["Alice Smith works at Acme Corp"]
    assert [(s["start"], s["end"], s["label"]) for s in got] == expected


def test_long_text_spans_split_over_overlapping_chunks(ents, invoke, index, tmp_path,
                                                       monkeypatch):
    """A text that becomes several chunks: each chunk gets the spans inside it, in its own
    coordinates; a span crossing a chunk boundary is cut there (and reported)."""
    import doctagger.ingest

    text = "Alice Smith met Bob Jones in Paris. Then Acme Corp hired Carol."
    parts = ["Alice Smith met Bob", "Bob Jones in Paris.", "Then  Acme Corp hired Carol."]

    def store_text_document(index, text, *, title=None, key=None):
        doc, _ = add_document(index, "import:test", parts, source="import")
        return doc

    monkeypatch.setattr(doctagger.ingest, "store_text_document", store_text_document)
    spans = [[0, 11, "PER"], [16, 25, "PER"], [29, 34, "LOC"], [41, 50, "ORG"],
             [57, 62, "PER"]]
    f = write(tmp_path / "e.jsonl", json.dumps({"text": text, "spans": spans}) + "\n")
    r = invoke("import", "ents", f)
    assert r.exit_code == 0, r.output
    assert "Imported 3 labels" in r.output and "1 new document" in r.output
    assert "some entities crossed a chunk boundary; they were cut there (lines 1)" in r.output

    def ents_of(chunk_text):
        return [(chunk_text[s["start"]:s["end"]], s["label"])
                for s in labels(index, "ents")[chunk_text]]

    assert ents_of(parts[0]) == [("Alice Smith", "PER"), ("Bob", "PER")]
    assert ents_of(parts[1]) == [("Bob Jones", "PER"), ("Paris", "LOC")]
    assert ents_of(parts[2]) == [("Acme Corp", "ORG"), ("Carol", "PER")]


# -- export and round trips ---------------------------------------------------------------
ROUND_TRIP = {
    "csv": ("topic", "text,label\n"
            "Plain line.,legal\n"
            '"Commas, ""quotes"" and\nline breaks",medical\n'
            "Ünïcödé — text,money\n"),
    "jsonl": ("ents", '{"text": "Alice works at Acme in Zürich.", "spans": '
              '[{"start": 0, "end": 5, "label": "PER"}, {"start": 15, "end": 19, '
              '"label": "ORG"}, {"start": 23, "end": 29, "label": "LOC"}]}\n'
              '{"text": "Nothing to see.", "spans": []}\n'),
    "conll": ("ents", "Bob\tB-PER\nJones\tI-PER\nflew\tO\nto\tO\nNew\tB-LOC\nYork\tI-LOC\n"
              ".\tO\n\nAcme\tB-ORG\nsaid\tO\nno\tO\n\n"),
}


ROUND_TRIP_COUNTS = {"csv": 3, "jsonl": 2, "conll": 2}


@pytest.mark.parametrize("fmt", sorted(ROUND_TRIP))
def test_export_import_export_is_byte_identical(fakes, invoke, tmp_path, fmt):
    task, content = ROUND_TRIP[fmt]
    first_index, second_index = tmp_path / "first", tmp_path / "second"
    source = write(tmp_path / f"source.{fmt}", content)
    for idx in (first_index, second_index):
        r = invoke("--index", idx, "tasks", "create", task, "--type",
                   "fakeclass" if task == "topic" else "fakener",
                   "--labels", "legal,medical,money" if task == "topic" else "PER,ORG,LOC")
        assert r.exit_code == 0, r.output
    r = invoke("--index", first_index, "import", task, source)
    assert r.exit_code == 0, r.output
    one = tmp_path / f"one.{fmt}"
    r = invoke("--index", first_index, "export", task, "-o", one)  # format from the suffix
    assert r.exit_code == 0, r.output
    assert f"Wrote {ROUND_TRIP_COUNTS[fmt]} labels of '{task}' to {one} ({fmt})." in r.output
    r = invoke("--index", second_index, "import", task, one)
    assert r.exit_code == 0, r.output
    r = invoke("--index", second_index, "export", task, "--format", fmt)
    assert r.exit_code == 0, r.output
    assert r.output.encode("utf-8") == one.read_bytes()
    assert one.read_text(encoding="utf-8") == content  # and it is the file we started from


def test_document_level_round_trip_with_paths_and_texts(fakes, invoke, tmp_path):
    first_index, second_index = tmp_path / "first", tmp_path / "second"
    for idx in (first_index, second_index):
        invoke("--index", idx, "tasks", "create", "kind", "--type", "fakeclass",
               "--labels", "memo,invoice", "--level", "document")
        with Index(idx) as index:
            add_document(index, "/docs/a.pdf", ["a"])
    source = write(tmp_path / "k.jsonl",
                   '{"path": "/docs/a.pdf", "label": "memo"}\n'
                   '{"text": "Invoice 7: pay 10 EUR.", "label": "invoice"}\n')
    assert invoke("--index", first_index, "import", "kind", source).exit_code == 0
    one = invoke("--index", first_index, "export", "kind", "--format", "csv").output
    assert one == "text,path,label\n,/docs/a.pdf,memo\nInvoice 7: pay 10 EUR.,,invoice\n"
    f = write(tmp_path / "one.csv", one)
    r = invoke("--index", second_index, "import", "kind", f)
    assert r.exit_code == 0, r.output
    assert invoke("--index", second_index, "export", "kind", "--format", "csv").output == one


def test_export_dedupes_identical_texts_and_keeps_orphans(topic, invoke, index, tmp_path):
    from doctagger.labels import save_label

    _, (c1,) = add_document(index, "/d/a.pdf", ["Same words."])
    _, (c2,) = add_document(index, "/d/b.pdf", ["Same  words."])
    _, (c3,) = add_document(index, "/d/c.pdf", ["Gone later."])
    task = index.task("topic")
    for chunk in (c1, c2):
        save_label(index, task, "legal", chunk_id=chunk)
    save_label(index, task, "money", chunk_id=c3)
    with index.write() as db:
        db.execute("delete from chunks where id = ?", [c3])  # re-ingested away: orphaned
    r = invoke("export", "topic", "--format", "csv")
    assert r.exit_code == 0, r.output
    assert r.output == "text,label\nSame words.,legal\nGone later.,money\n"
    r = invoke("export", "topic")  # jsonl by default, to stdout
    assert r.output.splitlines()[0] == '{"text": "Same words.", "label": "legal"}'


def test_export_errors(topic, ents, invoke, tmp_path):
    r = invoke("export", "topic", "--format", "conll")
    assert r.exit_code == 1 and "CoNLL holds NER tags only" in r.output
    r = invoke("export", "nope")
    assert r.exit_code == 1 and "no task 'nope' in the index" in r.output
    r = invoke("export", "topic", "-o", tmp_path / "no" / "such" / "x.csv")
    assert r.exit_code == 1 and "the folder" in r.output and "does not exist" in r.output
    r = invoke("export", "topic", "--model", "1")
    assert r.exit_code == 2 and "add --predictions" in r.output
    r = invoke("export", "topic", "--predictions")
    assert r.exit_code == 1 and "task 'topic' has no active model; train one" in r.output
    r = invoke("export", "topic", "-o", tmp_path / "empty.jsonl")
    assert r.exit_code == 0 and (tmp_path / "empty.jsonl").read_text() == ""


def test_failed_export_leaves_no_partial_file(ents, invoke, index, tmp_path):
    """What CoNLL cannot hold (a -DOCSTART- word reads back as a document break) is
    refused, naming the document, page and chunk, not "record 2"; nothing is written."""
    from doctagger.labels import save_label

    _, (c1, c2) = add_document(index, "/d/a.pdf", ["Alice works.", "-DOCSTART- Acme sells."])
    task = index.task("ents")
    save_label(index, task, [{"start": 0, "end": 5, "label": "PER"}], chunk_id=c1)
    save_label(index, task, [{"start": 11, "end": 15, "label": "ORG"}], chunk_id=c2)
    out = tmp_path / "e.conll"
    r = invoke("export", "ents", "-o", out)
    assert r.exit_code == 1, r.output
    assert r.output == (f"Error: /d/a.pdf, page 1, chunk {c2}: the text holds the word "
                        "-DOCSTART-, which CoNLL reads as a document break; export as jsonl "
                        "instead\n")
    assert list(tmp_path.glob("*.conll")) == [] and list(tmp_path.glob(".e.conll*")) == []
    with index.write() as db:  # an orphaned label is named as such
        db.execute("delete from chunks where id = ?", [c2])
    r = invoke("export", "ents", "--format", "conll")
    assert r.exit_code == 1
    assert "Error: /d/a.pdf, an orphaned chunk label (its chunk changed on re-ingest): the " \
           "text holds the word -DOCSTART-" in r.output


def test_conll_export_splits_words_at_span_edges(ents, invoke, index, tmp_path):
    """A span made in the terminal UI (`+ United States = LOC`) leaves the full stop out:
    the CoNLL writer cuts "States." into "States" and ".", so the task exports whole, and
    the file round-trips byte for byte."""
    from doctagger.labels import save_label

    text = "The firm moved from Canada to the United States. Acme(UK) did too."
    _, (c1,) = add_document(index, "/d/a.pdf", [text])
    spans = [{"start": 20, "end": 26, "label": "LOC"}, {"start": 34, "end": 47, "label": "LOC"},
             {"start": 49, "end": 53, "label": "ORG"}, {"start": 54, "end": 56, "label": "LOC"}]
    assert [text[s["start"]:s["end"]] for s in spans] == ["Canada", "United States", "Acme", "UK"]
    save_label(index, index.task("ents"), spans, chunk_id=c1)
    one = tmp_path / "one.conll"
    r = invoke("export", "ents", "-o", one)
    assert r.exit_code == 0, r.output
    assert "Wrote 1 label of 'ents'" in r.output
    assert one.read_text() == (
        "The\tO\nfirm\tO\nmoved\tO\nfrom\tO\nCanada\tB-LOC\nto\tO\nthe\tO\n"
        "United\tB-LOC\nStates\tI-LOC\n.\tO\nAcme\tB-ORG\n(\tO\nUK\tB-LOC\n)\tO\n"
        "did\tO\ntoo.\tO\n\n")
    second = tmp_path / "second"
    invoke("--index", second, "tasks", "create", "ents", "--type", "fakener", "--labels",
           "PER,ORG,LOC")
    r = invoke("--index", second, "import", "ents", one)
    assert r.exit_code == 0, r.output
    with Index(second) as other:
        (got_text, got), = labels(other, "ents").items()
    assert [got_text[s["start"]:s["end"]] for s in got] == ["Canada", "United States", "Acme",
                                                            "UK"]
    r = invoke("--index", second, "export", "ents", "--format", "conll")
    assert r.output.encode("utf-8") == one.read_bytes()


def test_conll_unknown_entity_type_names_the_line_of_its_token(ents, invoke, index, tmp_path):
    """The unknown type's own line, not the line its sentence starts on; a malformed tag
    was already reported on its line."""
    sentence = ["Alice\tB-PER", "met\tO", "Bob\tB-PER", "in\tO", "Paris\tB-LOC", ".\tO"]
    lines = ["-DOCSTART-\tO", ""] + (sentence + [""]) * 9
    assert lines[59 - 1] == "Alice\tB-PER" and lines[63 - 1] == "Paris\tB-LOC"
    lines[63 - 1] = "Paris\tB-animal"  # the sentence starts on line 59, Bob is on line 61
    f = write(tmp_path / "bad.conll", "\n".join(lines) + "\n")
    before = counts(index)
    r = invoke("import", "ents", f)
    assert r.exit_code == 1, r.output
    assert f"Error: {f}, line 63: unknown entity label 'animal'" in r.output
    assert counts(index) == before
    lines[63 - 1] = "Paris\tB_animal"
    f = write(tmp_path / "bad2.conll", "\n".join(lines) + "\n")
    r = invoke("import", "ents", f)
    assert r.exit_code == 1 and f"{f}, line 63: unknown tag 'B_animal'" in r.output


def test_a_copy_skipped_at_ingest_is_matched_by_content(fakes, invoke, index, tmp_path,
                                                        monkeypatch):
    """ingest skips a file whose content another ingested path holds ("1 duplicate"); a
    label for the copy's path goes to the document with that content, with a warning."""
    import shutil

    from tests.fakes import make_pdf

    invoke("tasks", "create", "kind", "--type", "fakeclass", "--labels", "memo,invoice",
           "--level", "document")
    monkeypatch.chdir(tmp_path)
    original = make_pdf(tmp_path / "p8" / "a" / "abstract-001.pdf", [["An abstract."]])
    (tmp_path / "p8" / "b").mkdir()
    shutil.copy(original, tmp_path / "p8" / "b" / "abstract-001.pdf")
    make_pdf(tmp_path / "other.pdf", [["Never ingested."]])
    r = invoke("ingest", "p8")
    assert r.exit_code == 0, r.output
    assert "1 duplicate" in r.output
    stored = index.scalar("select path from documents")
    assert stored.endswith("p8/a/abstract-001.pdf")
    f = write(tmp_path / "dup.csv", "path,label\np8/b/abstract-001.pdf,memo\n")
    r = invoke("import", "kind", f)
    assert r.exit_code == 0, r.output
    assert (f"Warning: {f}: matched by content: p8/b/abstract-001.pdf is a copy of {stored} "
            "(line 2)") in r.output
    assert labels(index, "kind") == {f"doc:{stored}": "memo"}
    # A file whose content is not in the index, or no file at all: the message as before.
    for ref in ("other.pdf", "p8/c/abstract-001.pdf"):
        f = write(tmp_path / "none.csv", f"path,label\n{ref},memo\n")
        r = invoke("import", "kind", f)
        assert r.exit_code == 1
        assert f"{f}, line 2: no document in the index matches the path '{ref}'; ingest it " \
               "first" in r.output


def test_an_existing_file_decides_before_a_path_suffix(fakes, invoke, index, tmp_path,
                                                       monkeypatch):
    """A path that names an existing file is matched by that file (its path in the index,
    else its content), never by another document whose path merely ends the same way:
    twin/x.pdf, a copy of first/y.pdf that ingest skipped, labels first/y.pdf, not the
    indexed other/x.pdf."""
    import shutil

    from tests.fakes import make_pdf

    invoke("tasks", "create", "kind", "--type", "fakeclass", "--labels", "memo,invoice",
           "--level", "document")
    monkeypatch.chdir(tmp_path)
    original = make_pdf(tmp_path / "docs" / "first" / "y.pdf", [["The original."]])
    make_pdf(tmp_path / "docs" / "other" / "x.pdf", [["Another document."]])
    (tmp_path / "docs" / "twin").mkdir()
    shutil.copy(original, tmp_path / "docs" / "twin" / "x.pdf")
    r = invoke("ingest", "docs")
    assert r.exit_code == 0, r.output
    assert "1 duplicate" in r.output
    paths = {Path(p).parent.name: p for p in
             (r["path"] for r in index.query("select path from documents"))}
    assert set(paths) == {"first", "other"}
    f = write(tmp_path / "docs" / "twin" / "labels.csv", "path,label\nx.pdf,memo\n")
    r = invoke("import", "kind", f)
    assert r.exit_code == 0, r.output
    assert f"Warning: {f}: matched by content: x.pdf is a copy of {paths['first']} (line 2)" \
        in r.output
    assert labels(index, "kind") == {f"doc:{paths['first']}": "memo"}
    # the same name relative to the current folder (no file next to the label file)
    f = write(tmp_path / "cwd.csv", "path,label\ndocs/twin/x.pdf,invoice\n")
    r = invoke("import", "kind", f)
    assert r.exit_code == 0, r.output
    assert labels(index, "kind") == {f"doc:{paths['first']}": "invoice"}
    # an existing file whose content is in no document: an error, not the suffix's guess
    make_pdf(tmp_path / "docs" / "twin" / "z.pdf", [["Never ingested."]])
    make_pdf(tmp_path / "z" / "z.pdf", [["Indexed under z."]])
    r = invoke("ingest", "z")
    assert r.exit_code == 0, r.output
    f = write(tmp_path / "docs" / "twin" / "z.csv", "path,label\nz.pdf,memo\n")
    r = invoke("import", "kind", f)
    assert r.exit_code == 1, r.output
    assert (f"Error: {f}, line 2: no document in the index matches the path 'z.pdf'; ingest "
            f"it first: the file {tmp_path / 'docs' / 'twin' / 'z.pdf'} is in the index "
            "neither by its path nor by its content") in r.output
    assert labels(index, "kind") == {f"doc:{paths['first']}": "invoice"}
    # no such file: the unique suffix still decides
    f = write(tmp_path / "suffix.csv", "path,label\nother/x.pdf,memo\n")
    r = invoke("import", "kind", f)
    assert r.exit_code == 0, r.output
    assert labels(index, "kind")[f"doc:{paths['other']}"] == "memo"


@pytest.mark.parametrize("line, message", [
    ('{"text": "fine", "label": null}', "a label must be a string (in double quotes), found null"),
    ('{"text": "fine", "label": 3}', "found a number 3"),
    ('{"text": "fine", "label": [1, 2]}', "found a number 1 in [1, 2]"),
    ('{"text": ["fine"], "label": "legal"}', '"text" must be a string, found a list ["fine"]'),
])
def test_wrong_values_are_described_as_the_json_written(topic, invoke, tmp_path, line,
                                                         message):
    f = write(tmp_path / "v.jsonl", line + "\n")
    r = invoke("import", "topic", f)
    assert r.exit_code == 1
    assert r.output.startswith(f"Error: {f}, line 1: ") and message in r.output
    assert "NoneType" not in r.output and " int" not in r.output


@pytest.mark.parametrize("name, content", [
    ("empty.csv", ""), ("empty.jsonl", ""), ("blank.jsonl", "\n\n"), ("header.csv", "text,label\n"),
    ("empty.conll", "\n")])
def test_an_empty_label_file_is_an_error_in_every_format(topic, ents, invoke, index, tmp_path,
                                                         name, content):
    f = write(tmp_path / name, content)
    r = invoke("import", "ents" if name.endswith(".conll") else "topic", f)
    assert r.exit_code == 1
    assert r.output.startswith(f"Error: {f}: the file is empty")
    assert r.output.count("\n") == 1


def test_export_refuses_a_suffix_it_cannot_tell_a_format_from(topic, invoke, index, tmp_path):
    from doctagger.labels import save_label

    _, (c1,) = add_document(index, "/d/a.pdf", ["one"])
    save_label(index, index.task("topic"), "legal", chunk_id=c1)
    r = invoke("export", "topic", "-o", tmp_path / "out.xlsx")
    assert r.exit_code == 2
    assert "Invalid value for '-o' / '--output': cannot tell the format from '.xlsx'; use " \
           ".jsonl, .csv, .tsv or .conll, or give --format" in r.output
    assert not (tmp_path / "out.xlsx").exists()
    r = invoke("export", "topic", "-o", tmp_path / "out.xlsx", "--format", "csv")
    assert r.exit_code == 0 and (tmp_path / "out.xlsx").read_text() == "text,label\none,legal\n"
    r = invoke("export", "topic", "-o", tmp_path / "labels")  # no suffix: jsonl
    assert r.exit_code == 0 and "(jsonl)" in r.output


# -- predictions ---------------------------------------------------------------------------
def _model(index, task_name, version, *, active=False):
    task = index.task(task_name)
    with index.write() as db:
        model_id = db["models"].insert({"task_id": task.id, "version": version,
                                        "path": f"models/{task_name}/v{version}",
                                        "created_at": now()}).last_pk
        if active:
            db.execute("update tasks set active_model_id = ? where id = ?", [model_id, task.id])
    return model_id


def _predict(index, task_name, model_id, chunk_id, value, score):
    task = index.task(task_name)
    with index.write() as db:
        db["predictions"].insert({"task_id": task.id, "model_id": model_id, "chunk_id": chunk_id,
                                  "value": json.dumps(value), "score": score,
                                  "created_at": now()})


def test_export_predictions_of_active_or_chosen_model(topic, invoke, index, tmp_path):
    _, (c1, c2) = add_document(index, "/d/a.pdf", ["one", "two"])
    v1 = _model(index, "topic", 1)
    v2 = _model(index, "topic", 2, active=True)
    _predict(index, "topic", v1, c1, "legal", 0.5)
    _predict(index, "topic", v2, c2, "money", 0.75)
    _predict(index, "topic", v2, c1, "medical", 0.25)
    r = invoke("export", "topic", "--predictions")
    assert r.exit_code == 0, r.output
    assert [json.loads(x) for x in r.output.splitlines()] == [
        {"text": "one", "label": "medical", "score": 0.25, "model_version": 2,
         "document": "/d/a.pdf", "page": 1},
        {"text": "two", "label": "money", "score": 0.75, "model_version": 2,
         "document": "/d/a.pdf", "page": 1}]
    r = invoke("export", "topic", "--predictions", "--model", "1", "--format", "csv")
    assert r.output == "text,label,score,model_version,document,page\none,legal,0.5,1,/d/a.pdf,1\n"
    r = invoke("export", "topic", "--predictions", "--model", "9")
    assert r.exit_code == 1 and "task 'topic' has no model version 9 (versions: v1, v2)" \
        in r.output

    # Predictions exported, then imported as labels: meta fields are ignored.
    out = tmp_path / "p.jsonl"
    assert invoke("export", "topic", "--predictions", "-o", out).exit_code == 0
    r = invoke("import", "topic", out, "--source", "model-accepted")
    assert r.exit_code == 0, r.output
    assert labels(index) == {"one": "medical", "two": "money"}


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_none_of_the_labels_round_trips(fakes, invoke, index, tmp_path, fmt):
    """[] ("none of the labels", what `label`'s 0 saves) is a multi-label value like any
    other: it exports, and imports back as []; a CSV says how many empty cells it read."""
    from doctagger.labels import save_label

    invoke("tasks", "create", "tags", "--type", "fakeclass", "--labels", "a,b", "--multi-label")
    _, (c1, c2) = add_document(index, "/d/a.pdf", ["first text", "second text"])
    task = index.task("tags")
    save_label(index, task, [], chunk_id=c1)
    save_label(index, task, ["a", "b"], chunk_id=c2)
    out = tmp_path / f"tags.{fmt}"
    r = invoke("export", "tags", "-o", out)
    assert r.exit_code == 0, r.output
    if fmt == "csv":
        assert out.read_text() == "text,label\nfirst text,\nsecond text,a|b\n"
    else:
        assert [json.loads(x)["label"] for x in out.read_text().splitlines()] == [[], ["a", "b"]]
    other = tmp_path / "other"
    invoke("--index", other, "tasks", "create", "tags", "--type", "fakeclass", "--labels", "a,b",
           "--multi-label")
    r = invoke("--index", other, "import", "tags", out)
    assert r.exit_code == 0, r.output
    assert ("1 row(s) with an empty 'label' cell read as 'none of the labels'" in r.output) == \
        (fmt == "csv")
    with Index(other) as second:
        assert labels(second, "tags") == {"first text": [], "second text": ["a", "b"]}


def test_export_predictions_with_no_answer(topic, invoke, index):
    """A prediction may have no answer (None: a rule-based type's "no rule matched"): it is
    exported as null / an empty cell, not refused."""
    _, (c1, c2) = add_document(index, "/d/a.pdf", ["one", "two"])
    v1 = _model(index, "topic", 1, active=True)
    _predict(index, "topic", v1, c1, None, 0.0)
    _predict(index, "topic", v1, c2, "money", 0.75)
    r = invoke("export", "topic", "--predictions")
    assert r.exit_code == 0, r.output
    assert [json.loads(x)["label"] for x in r.output.splitlines()] == [None, "money"]
    r = invoke("export", "topic", "--predictions", "--format", "csv")
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[1:] == ["one,,0.0,1,/d/a.pdf,1", "two,money,0.75,1,/d/a.pdf,1"]


def test_export_document_tags_for_document_level_tasks(fakes, invoke, index):
    invoke("tasks", "create", "kinds", "--type", "fakeclass", "--labels", "memo,invoice,x",
           "--level", "document", "--multi-label")
    doc, _ = add_document(index, "/d/a.pdf", ["a"])
    model_id = _model(index, "kinds", 1, active=True)
    task = index.task("kinds")
    with index.write() as db:
        for label, score in (("memo", 0.5), ("invoice", 0.75)):
            db["document_tags"].insert({"task_id": task.id, "model_id": model_id,
                                        "document_id": doc, "label": label, "score": score,
                                        "created_at": now()})
    r = invoke("export", "kinds", "--predictions")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == {"path": "/d/a.pdf", "label": ["invoice", "memo"],
                                    "score": 0.5, "scores": {"invoice": 0.75, "memo": 0.5},
                                    "model_version": 1}


def test_commands_have_help(fakes, invoke):
    from doctagger.cli.labels_io import COMMANDS

    for command in COMMANDS:
        assert command.help and "\b" in command.help
        for param in command.params:
            if param.param_type_name == "option":
                assert param.help, f"{command.name} {param.name}"
        assert invoke(command.name, "--help").exit_code == 0


def test_long_text_through_the_real_chunker(fakes, invoke, index, tmp_path):
    """A long text becomes several chunks: a class labels each; spans land on the same
    words in each chunk; export then import then export stays the same."""
    invoke("tasks", "create", "topic", "--type", "fakeclass", "--labels", "legal,money")
    invoke("tasks", "create", "ents", "--type", "fakener", "--labels", "ORG")
    sentence = "The board of Acme Corp met on Monday and approved the annual budget again. "
    text = "\n\n".join(f"Part {i}. " + sentence * 6 for i in range(8))
    spans = [[m, m + 9, "ORG"] for m in range(len(text)) if text.startswith("Acme Corp", m)]
    f = write(tmp_path / "t.jsonl", json.dumps({"text": text, "label": "money"}) + "\n")
    r = invoke("import", "topic", f)
    assert r.exit_code == 0, r.output
    n_chunks = index.scalar("select count(*) from chunks")
    assert n_chunks > 2
    assert f"Imported {n_chunks} labels into 'topic' ({n_chunks} new, 0 updated); " \
           "1 new document." in r.output
    f = write(tmp_path / "e.jsonl", json.dumps({"text": text, "spans": spans}) + "\n")
    r = invoke("import", "ents", f)
    assert r.exit_code == 0, r.output
    assert "0 new documents" in r.output and "cut" not in r.output
    found = 0
    for chunk_text, value in labels(index, "ents").items():
        assert [chunk_text[s["start"]:s["end"]] for s in value] == \
               ["Acme Corp"] * chunk_text.count("Acme Corp")
        found += len(value)
    assert found == len(spans)

    one = tmp_path / "one.jsonl"
    assert invoke("export", "ents", "-o", one).exit_code == 0
    second = tmp_path / "second"
    invoke("--index", second, "tasks", "create", "ents", "--type", "fakener", "--labels", "ORG")
    assert invoke("--index", second, "import", "ents", one).exit_code == 0
    r = invoke("--index", second, "export", "ents")
    assert r.output.encode("utf-8") == one.read_bytes()


def test_multi_label_predictions_export_their_scores(fakes, invoke, index):
    """docs/labels.md: multi-label records carry `scores` per label (QA: chunk predictions
    of a multi-label task had none); JSONL an object, CSV a JSON cell."""
    invoke("tasks", "create", "topics", "--type", "fakeclass", "--labels", "a,b",
           "--multi-label")
    _, (c1, c2) = add_document(index, "/d/a.pdf", ["first text", "second text"])
    v1 = _model(index, "topics", 1, active=True)
    task = index.task("topics")
    with index.write() as db:
        for chunk, value, score, scores in ((c1, ["a"], 0.75, {"a": 0.75, "b": 0.125}),
                                            (c2, [], 0.5, None)):
            db["predictions"].insert({"task_id": task.id, "model_id": v1, "chunk_id": chunk,
                                      "value": json.dumps(value), "score": score,
                                      "scores": json.dumps(scores) if scores else None,
                                      "created_at": now()})
    r = invoke("export", "topics", "--predictions")
    assert r.exit_code == 0, r.output
    assert [json.loads(x) for x in r.output.splitlines()] == [
        {"text": "first text", "label": ["a"], "score": 0.75,
         "scores": {"a": 0.75, "b": 0.125}, "model_version": 1, "document": "/d/a.pdf",
         "page": 1},
        {"text": "second text", "label": [], "score": 0.5, "scores": None, "model_version": 1,
         "document": "/d/a.pdf", "page": 1}]
    r = invoke("export", "topics", "--predictions", "--format", "csv")
    assert r.output.splitlines() == [
        "text,label,score,scores,model_version,document,page",
        'first text,a,0.75,"{""a"": 0.75, ""b"": 0.125}",1,/d/a.pdf,1',
        "second text,,0.5,,1,/d/a.pdf,1"]


def test_exporting_predictions_before_tagging_says_to_tag(ents, invoke, index, tmp_path):
    """QA: 'export ents --predictions' before any 'tag' said 'Wrote 0 predictions'."""
    add_document(index, "/d/a.pdf", ["Alice met Bob"])
    _model(index, "ents", 1)
    _model(index, "ents", 2, active=True)
    r = invoke("export", "ents", "--predictions", "-o", tmp_path / "p.jsonl")
    assert r.exit_code == 0
    assert ("Wrote 0 predictions of 'ents' to %s (jsonl); no predictions of v2 yet: run "
            "'doctagger tag ents' first." % (tmp_path / "p.jsonl")) in r.output
    r = invoke("export", "ents", "--predictions", "--model", "1")
    assert r.exit_code == 0
    assert r.output == ("No predictions to export for 'ents': no predictions of v1 yet: run "
                        "'doctagger tag ents --model 1' first.\n")
    r = invoke("export", "ents")  # labels: no hint about tagging
    assert r.output == "No labels to export for 'ents'.\n"
