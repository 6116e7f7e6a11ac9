"""doctagger ingest: a corpus made in the test with PyMuPDF, then the real shared corpora
(skipped with a reason when ../shared/data is absent)."""
from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from doctagger import ingest as ingest_module
from doctagger.extractors import ExtractionError, ExtractOptions
from doctagger.hookspecs import hookimpl
from doctagger.index import Index, text_hash

# -- making documents ----------------------------------------------------------------
def pymupdf():
    from doctagger.extractors import import_pymupdf

    return import_pymupdf()


def make_pdf(path, pages, *, title=None, author=None, encrypt=None) -> Path:
    """A PDF whose pages hold the given paragraphs, one text block each."""
    fitz = pymupdf()
    doc = fitz.open()
    for paragraphs in pages:
        page = doc.new_page(width=595, height=842)
        y = 60
        for text in paragraphs:
            rect = fitz.Rect(60, y, 535, y + 300)
            left = page.insert_textbox(rect, text, fontsize=10)
            y += (300 - left if left >= 0 else 300) + 24
    doc.set_metadata({"title": title or "", "author": author or ""})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if encrypt:
        doc.save(path, encryption=fitz.PDF_ENCRYPT_AES_256, user_pw=encrypt,
                 owner_pw=encrypt + "-owner")
    else:
        doc.save(path)
    return path


def make_scanned_pdf(path, text="Scanned invoice number 4711 from Lisbon") -> Path:
    """A one-page PDF whose only content is a picture of ``text``: no text layer."""
    fitz = pymupdf()
    src = fitz.open()
    page = src.new_page(width=400, height=120)
    page.insert_text((20, 60), text, fontsize=16)
    pix = page.get_pixmap(dpi=200)
    doc = fitz.open()
    scanned = doc.new_page(width=400, height=120)
    scanned.insert_image(scanned.rect, pixmap=pix)
    doc.save(path)
    return Path(path)


def corpus(folder: Path) -> Path:
    make_pdf(folder / "cats.pdf", [["Cats purr when they are content.",
                                    "A cat sleeps for most of the day."],
                                   ["Page two is about kittens and their mothers."]],
             title="All about cats", author="Ann Author")
    make_pdf(folder / "sub" / "dogs.pdf", [["Dogs bark at the postman every morning."]])
    (folder / "notes.md").write_text("# Notes\n\nA markdown note about parrots.\n\n"
                                     "Second paragraph of the note.\n", encoding="utf-8")
    (folder / "ignored.csv").write_text("not,ingested\n")
    (folder / ".hidden.pdf").write_bytes(b"%PDF-1.4 hidden files are skipped")
    return folder


def ingest_json(invoke, *args):
    result = invoke("ingest", *args, "--json")
    assert "Traceback" not in result.output
    return result, json.loads(result.stdout)


def by_name(data) -> dict:
    return {Path(r["path"]).name: r for r in data["results"]}


@pytest.fixture
def docs_dir(tmp_path):
    return corpus(tmp_path / "docs")


# -- the basics ----------------------------------------------------------------------
def test_ingest_a_folder_then_nothing_changes(invoke, docs_dir, index_path):
    result, data = ingest_json(invoke, docs_dir)
    assert result.exit_code == 0, result.output
    files = by_name(data)
    assert set(files) == {"cats.pdf", "dogs.pdf", "notes.md"}
    assert data["new"] == 3 and data["failed"] == 0 and data["exit_code"] == 0
    assert files["cats.pdf"]["pages"] == 2 and files["cats.pdf"]["status"] == "ok"
    with Index(index_path) as index:
        doc = index.document("cats.pdf")
        assert (doc["title"], doc["author"], doc["pages"], doc["format"]) == (
            "All about cats", "Ann Author", 2, "pdf")
        assert doc["sha256"] == ingest_module.file_sha256(docs_dir / "cats.pdf")
        chunks = index.chunks(doc["id"])
        assert [c["page"] for c in chunks] == [1, 2]
        assert chunks[0]["text"] == ("Cats purr when they are content.\n\n"
                                     "A cat sleeps for most of the day.")
        assert doc["chunk_count"] == len(chunks)
        for c in chunks:  # chunk text is the slice of its page's text
            page = index.one("select text from pages where document_id = ? and page = ?",
                             [doc["id"], c["page"]])
            assert page["text"][c["char_start"]:c["char_end"]] == c["text"]
            assert c["text_hash"] == text_hash(c["text"])
            x0, y0, x1, y1 = json.loads(c["bbox"])
            assert 50 < x0 < x1 < 595 and 50 < y0 < y1 < 842
            assert 0 < c["tokens"] <= 200
        note = index.document("notes.md")
        assert note["title"] == "Notes" and note["chunk_count"] == 1
    result, data = ingest_json(invoke, docs_dir)
    assert result.exit_code == 0
    assert data["unchanged"] == 3 and data["new"] == 0 and data["pages"] == 0
    assert {r["action"] for r in data["results"]} == {"unchanged"}


def test_summary_on_the_terminal(invoke, docs_dir):
    result = invoke("ingest", docs_dir)
    assert result.exit_code == 0
    assert "3 files: 3 new, 0 changed, 0 unchanged, 0 failed. 4 pages, 4 chunks in" in result.stdout
    result = invoke("ingest", docs_dir)
    assert "3 files: 0 new, 0 changed, 3 unchanged, 0 failed. 0 pages, 0 chunks" in result.stdout


def test_a_file_given_by_name_and_a_missing_path(invoke, docs_dir):
    result, data = ingest_json(invoke, docs_dir / "sub" / "dogs.pdf")
    assert result.exit_code == 0 and data["new"] == 1
    result = invoke("ingest", docs_dir / "nope.pdf")
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_unsupported_file_given_by_name_is_recorded(invoke, docs_dir):
    result, data = ingest_json(invoke, docs_dir / "ignored.csv")
    assert result.exit_code == 3
    assert data["results"][0]["status"] == "failed"
    assert data["results"][0]["error"].startswith("unsupported file type .csv: doctagger reads ")


def test_empty_folder(invoke, tmp_path):
    (tmp_path / "empty").mkdir()
    result = invoke("ingest", tmp_path / "empty")
    assert result.exit_code == 0
    assert "No files to ingest" in result.output


def test_workers_give_the_same_chunks(invoke, docs_dir, tmp_path):
    def chunks(index_dir, workers):
        result = invoke("--index", index_dir, "ingest", docs_dir, "--workers", workers)
        assert result.exit_code == 0, result.output
        db = sqlite3.connect(index_dir / "doctagger.db")
        return db.execute("select d.path, c.seq, c.text, c.page, c.char_start, c.char_end, "
                          "c.bbox, c.tokens from chunks c join documents d on d.id = "
                          "c.document_id order by d.path, c.seq").fetchall()

    assert chunks(tmp_path / "i0", 0) == chunks(tmp_path / "i2", 2)


def test_chunk_tokens_option(invoke, tmp_path, index_path):
    para = " ".join(f"Sentence number {i} is here." for i in range(60))
    make_pdf(tmp_path / "long.pdf", [[para]])
    result = invoke("ingest", tmp_path / "long.pdf", "--chunk-tokens", "32")
    assert result.exit_code == 0, result.output
    with Index(index_path) as index:
        tokens = [c["tokens"] for c in index.chunks(index.document("long.pdf")["id"])]
    assert len(tokens) > 10 and max(tokens) <= 32
    result = invoke("ingest", tmp_path / "long.pdf", "--chunk-tokens", "600")
    assert result.exit_code == 2
    assert "600 is not in the range 16<=x<=512" in result.output


# -- incremental ---------------------------------------------------------------------
def add_task_and_labels(index, doc_id):
    """A task with a label on each chunk of the document (written as the labels module
    would, without needing a task-type plugin)."""
    from doctagger.index import now

    with index.write() as db:
        task_id = db["tasks"].insert({"name": "topic", "type": "classification",
                                      "labels": '["a", "b"]', "created_at": now()}).last_pk
        for c in index.chunks(doc_id):
            db["labels"].insert({"task_id": task_id, "target": "chunk", "document_id": doc_id,
                                 "chunk_id": c["id"], "text_hash": c["text_hash"],
                                 "text": c["text"], "value": '"a"', "source": "human",
                                 "created_at": now(), "updated_at": now()})
        db["labels"].insert({"task_id": task_id, "target": "document", "document_id": doc_id,
                             "value": '"b"', "source": "human", "created_at": now(),
                             "updated_at": now()})


def test_changed_file_is_reextracted_and_labels_follow_their_text(invoke, tmp_path, index_path):
    paras = [f"Paragraph {i} " + "talks about contracts and clauses. " * 25 for i in range(4)]
    pdf = make_pdf(tmp_path / "c.pdf", [paras])
    assert invoke("ingest", pdf).exit_code == 0
    with Index(index_path) as index:
        doc = index.document("c.pdf")
        old_chunks = index.chunks(doc["id"])
        assert len(old_chunks) >= 3
        add_task_and_labels(index, doc["id"])
    # change the text of the second paragraph only
    changed = paras[:1] + ["A completely different second paragraph."] + paras[2:]
    time.sleep(0.01)
    make_pdf(pdf, [changed])
    result, data = ingest_json(invoke, pdf)
    assert result.exit_code == 0
    assert data["results"][0]["action"] == "changed" and data["changed"] == 1
    with Index(index_path) as index:
        assert index.document("c.pdf")["id"] == doc["id"]  # same row: document labels stay
        new_chunks = index.chunks(doc["id"])
        labels = index.query("select * from labels where target = 'chunk' order by id")
        new_ids = {c["id"] for c in new_chunks}
        kept = [lab for lab in labels if lab["chunk_id"] is not None]
        orphaned = [lab for lab in labels if lab["chunk_id"] is None]
        new_hashes = {c["text_hash"]: c["id"] for c in new_chunks}
        for lab in kept:
            assert lab["chunk_id"] in new_ids
            assert new_hashes[lab["text_hash"]] == lab["chunk_id"]
        for lab in orphaned:
            assert lab["text_hash"] not in new_hashes and lab["text"]
        assert kept and orphaned
        assert data["labels_reattached"] == len(kept)
        assert data["labels_orphaned"] == len(orphaned)
        assert index.scalar("select count(*) from labels where target = 'document'") == 1
        assert index.counts()["orphaned_labels"] == len(orphaned)
    status = invoke("status")
    assert f"{len(orphaned)} orphaned" in status.output


def test_touched_but_identical_file_is_unchanged(invoke, docs_dir):
    ingest_json(invoke, docs_dir)
    os.utime(docs_dir / "notes.md", ns=(1, 1))
    result, data = ingest_json(invoke, docs_dir)
    assert data["unchanged"] == 3


def test_force_reextracts_and_keeps_labels_and_chunk_ids(invoke, tmp_path, index_path):
    pdf = make_pdf(tmp_path / "f.pdf", [["Force me once.", "And twice."]])
    invoke("ingest", pdf)
    with Index(index_path) as index:
        doc_id = index.document("f.pdf")["id"]
        add_task_and_labels(index, doc_id)
        before = index.chunks(doc_id)
    result, data = ingest_json(invoke, pdf, "--force")
    assert data["results"][0]["action"] == "reextracted" and data["reextracted"] == 1
    with Index(index_path) as index:
        assert index.chunks(doc_id) == before  # same text: rows kept, predictions too
        assert index.counts()["orphaned_labels"] == 0


def test_moved_file_keeps_its_document(invoke, docs_dir, index_path):
    ingest_json(invoke, docs_dir)
    with Index(index_path) as index:
        doc_id = index.document("dogs.pdf")["id"]
    shutil.move(docs_dir / "sub" / "dogs.pdf", docs_dir / "dogs-moved.pdf")
    result, data = ingest_json(invoke, docs_dir)
    moved = by_name(data)["dogs-moved.pdf"]
    assert moved["action"] == "moved" and moved["document_id"] == doc_id
    assert moved["moved_from"].endswith("sub/dogs.pdf")
    with Index(index_path) as index:
        assert index.document("dogs-moved.pdf")["id"] == doc_id
        assert index.scalar("select count(*) from documents") == 3


def test_copy_of_a_document_is_a_duplicate(invoke, docs_dir, index_path):
    shutil.copy(docs_dir / "cats.pdf", docs_dir / "cats-copy.pdf")
    result, data = ingest_json(invoke, docs_dir)
    assert result.exit_code == 0
    assert data["duplicate"] == 1 and data["new"] == 3
    dup = by_name(data)["cats.pdf"]
    assert dup["action"] == "duplicate" and dup["duplicate_of"].endswith("cats-copy.pdf")
    with Index(index_path) as index:
        assert index.scalar("select count(*) from documents") == 3


# -- bad files -----------------------------------------------------------------------
def bad_files(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    good = make_pdf(folder / "good.pdf", [["A good file among bad ones."]])
    (folder / "zero.pdf").write_bytes(b"")
    (folder / "zero2.pdf").write_bytes(b"")  # same content: a duplicate that fails too
    data = good.read_bytes()
    (folder / "truncated.pdf").write_bytes(data[: len(data) // 3])
    (folder / "page.pdf").write_text("<!DOCTYPE html><html><body>not a pdf</body></html>")
    (folder / "picture.pdf").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    (folder / "garbage.pdf").write_bytes(os.urandom(2048).replace(b"%PDF", b"xxxx"))
    (folder / "header-only.pdf").write_bytes(b"%PDF-1.7\n%%EOF\n")
    make_pdf(folder / "locked.pdf", [["Secret text behind a password."]], encrypt="s3cret")
    (folder / "blank.txt").write_text("   \n\n  ")
    (folder / "binary.txt").write_bytes(b"\x00\x01\x02binary")
    return folder


def test_bad_files_are_recorded_with_a_reason_and_the_run_goes_on(invoke, tmp_path, index_path):
    folder = bad_files(tmp_path / "bad")
    result, data = ingest_json(invoke, folder)
    assert result.exit_code == 3
    files = by_name(data)
    assert files["good.pdf"]["status"] == "ok"
    expected = {
        "zero.pdf": ("failed", "empty file (0 bytes)"),
        "page.pdf": ("failed", "not a PDF: the file does not start with %PDF (it looks like an HTML page)"),
        "picture.pdf": ("failed", "not a PDF: the file does not start with %PDF (it looks like a PNG image)"),
        "garbage.pdf": ("failed", "not a PDF: the file does not start with %PDF (it looks like binary data)"),
        "locked.pdf": ("encrypted", "encrypted: it needs a password; give it with --password"),
        "blank.txt": ("empty", "no text found: the file holds only white space"),
        "binary.txt": ("failed", "not a text file: it contains binary data"),
    }
    for name, (status, reason) in expected.items():
        assert (files[name]["status"], files[name]["error"]) == (status, reason), name
    # every empty file hashes alike: each is a failure of its own, not a duplicate
    assert files["zero2.pdf"]["action"] == "new"
    assert (files["zero2.pdf"]["status"], files["zero2.pdf"]["error"]) == expected["zero.pdf"]
    assert files["truncated.pdf"]["status"] in ("failed", "ok", "empty")
    assert files["header-only.pdf"]["status"] in ("failed", "empty")
    for r in data["results"]:
        assert r["status"] == "ok" or r["error"], r
    assert data["failed"] == sum(1 for r in data["results"]
                                 if r["status"] not in ("ok", "empty"))
    with Index(index_path) as index:
        rows = index.query("select path, status, error from documents")
    assert len(rows) == len(data["results"])
    assert all(r["status"] == "ok" or r["error"] for r in rows)
    failed = {Path(r["path"]).name: r for r in json.loads(invoke("docs", "--failed", "--json").output)}
    assert {"zero.pdf", "zero2.pdf"} <= set(failed)
    assert failed["locked.pdf"]["error"] == expected["locked.pdf"][1]
    assert "good.pdf" not in failed
    text = invoke("ingest", folder)
    assert text.exit_code == 3
    assert "encrypted  " in text.output and "locked.pdf: encrypted: it needs a password" in text.output
    assert "Traceback" not in text.output


def test_password_opens_an_encrypted_pdf(invoke, tmp_path, index_path):
    pdf = make_pdf(tmp_path / "locked.pdf", [["Secret text behind a password."]], encrypt="s3cret")
    result, data = ingest_json(invoke, pdf, "--password", "wrong")
    assert result.exit_code == 3
    assert data["results"][0]["error"] == "encrypted: none of the 1 password given opens it"
    result, data = ingest_json(invoke, pdf, "--password", "nope", "--password", "s3cret")
    assert result.exit_code == 0
    assert data["results"][0]["action"] == "reextracted"
    assert data["results"][0]["status"] == "ok"
    with Index(index_path) as index:
        assert "Secret text" in index.chunks(index.document("locked.pdf")["id"])[0]["text"]
    # without a password an encrypted file is not retried: unchanged, still counted
    pdf2 = make_pdf(tmp_path / "locked2.pdf", [["Other secret."]], encrypt="x")
    ingest_json(invoke, pdf2)
    result, data = ingest_json(invoke, pdf2)
    assert data["results"][0]["action"] == "unchanged" and result.exit_code == 3


def test_max_pages_limit(invoke, tmp_path):
    pdf = make_pdf(tmp_path / "three.pdf", [["one"], ["two"], ["three"]])
    result, data = ingest_json(invoke, pdf, "--max-pages", "2")
    assert result.exit_code == 3
    assert data["results"][0]["error"] == ("has 3 pages, over --max-pages 2; raise the limit "
                                           "to ingest it")


def test_embedded_javascript_and_files_are_never_run_or_extracted(invoke, tmp_path, index_path):
    fitz = pymupdf()
    doc = fitz.open()
    page = doc.new_page()
    page.insert_text((72, 72), "Visible text only.", fontsize=12)
    doc.embfile_add("payload.txt", b"ATTACHEDSECRET inside an attachment", filename="payload.txt")
    marker = tmp_path / "js-ran"
    js = doc.get_new_xref()
    doc.update_object(js, f"<< /S /JavaScript /JS (app.launchURL('file://{marker}'); "
                          "this.exportDataObject({cName: 'payload.txt', nLaunch: 2});) >>")
    doc.xref_set_key(doc.pdf_catalog(), "OpenAction", f"{js} 0 R")
    doc.save(tmp_path / "active.pdf")
    before = set(tmp_path.rglob("*"))
    result, data = ingest_json(invoke, tmp_path / "active.pdf")
    assert result.exit_code == 0 and data["results"][0]["status"] == "ok"
    with Index(index_path) as index:
        texts = " ".join(r["text"] for r in index.query("select text from chunks"))
        pages = " ".join(r["text"] for r in index.query("select text from pages"))
    assert "Visible text only." in texts
    assert "ATTACHEDSECRET" not in texts + pages
    created = set(tmp_path.rglob("*")) - before
    assert not marker.exists()
    assert all("index" in p.parts for p in created)  # nothing written beside the index


# -- workers that crash or hang --------------------------------------------------------
class CrashingExtractor:
    name = "crashing"
    suffixes = ("crash",)

    def extract(self, path, options):
        os.kill(os.getpid(), signal.SIGSEGV)


class HangingExtractor:
    name = "hanging"
    suffixes = ("hang",)

    def extract(self, path, options):
        time.sleep(60)  # never calls options.check_time(): only the hard limit stops it


class RaisingExtractor:
    name = "raising"
    suffixes = ("boom",)

    def extract(self, path, options):
        if "typed" in path.name:
            raise ExtractionError("failed", "the boom format is not supported here")
        raise ValueError("something deep inside went wrong")


class Extractors:
    @hookimpl
    def register_extractors(self, register):
        register(CrashingExtractor())
        register(HangingExtractor())
        register(RaisingExtractor())


def test_a_crashing_or_hanging_worker_fails_only_its_file(invoke, tmp_path, register_plugin,
                                                          monkeypatch):
    register_plugin(Extractors(), "test-extractors")
    monkeypatch.setattr(ingest_module.Pool, "GRACE_SECONDS", 0.5)
    folder = tmp_path / "odd"
    folder.mkdir()
    for name in ("a.crash", "b.hang", "c.boom", "typed.boom"):
        (folder / name).write_text(name)
    make_pdf(folder / "fine.pdf", [["This one is fine."]])
    started = time.monotonic()
    result, data = ingest_json(invoke, folder, "--workers", "2", "--max-seconds", "1")
    assert time.monotonic() - started < 30
    assert result.exit_code == 3
    files = by_name(data)
    assert files["fine.pdf"]["status"] == "ok"
    assert files["a.crash"]["error"] == ("the extractor process was killed by SIGSEGV while "
                                         "reading it; the file is probably damaged")
    assert files["b.hang"]["error"] == ("took longer than 1 s (--max-seconds); raise the "
                                        "limit to ingest it")
    assert files["c.boom"]["error"] == ("cannot read it: ValueError: something deep inside "
                                        "went wrong")
    assert files["typed.boom"]["error"] == "the boom format is not supported here"


def test_in_process_extraction_catches_errors_too(invoke, tmp_path, register_plugin):
    register_plugin(Extractors(), "test-extractors")
    (tmp_path / "c.boom").write_text("x")
    result, data = ingest_json(invoke, tmp_path / "c.boom", "--workers", "0")
    assert result.exit_code == 3
    assert data["results"][0]["error"].startswith("cannot read it: ValueError")


def test_sigkill_at_any_moment_leaves_a_consistent_index(tmp_path):
    folder = tmp_path / "many"
    for i in range(40):
        make_pdf(folder / f"doc{i:02}.pdf",
                 [[f"Document {i} paragraph {j}. " + "Filler words here. " * 40
                   for j in range(6)]] * 3)
    index_dir = tmp_path / "killed-index"
    env = {**os.environ, "DOCTAGGER_INDEX": str(index_dir)}
    cmd = [sys.executable, "-m", "doctagger", "ingest", str(folder), "--workers", "1"]
    killed_at = []
    for delay in (0.0, 0.4):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        db_file = index_dir / "doctagger.db"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until documents are being written
            if db_file.exists():
                try:
                    with sqlite3.connect(db_file, timeout=5) as db:
                        if db.execute("select count(*) from documents").fetchone()[0] >= 2:
                            break
                except sqlite3.OperationalError:
                    pass
            time.sleep(0.05)
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        killed_at.append(check_consistent(db_file))
    assert 2 <= killed_at[0] < 40  # killed in the middle of the run
    done = subprocess.run(cmd + ["--json"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["files"] == 40 and summary["failed"] == 0
    counts = check_consistent(index_dir / "doctagger.db")
    assert counts == 40


def check_consistent(db_file) -> int:
    with sqlite3.connect(db_file) as db:
        assert db.execute("pragma integrity_check").fetchone()[0] == "ok"
        docs = db.execute("select id, path, pages, chunk_count from documents").fetchall()
        assert len({d[1] for d in docs}) == len(docs)
        for doc_id, _, pages, chunk_count in docs:
            n = db.execute("select count(*) from chunks where document_id = ?", [doc_id]).fetchone()[0]
            p = db.execute("select count(*) from pages where document_id = ?", [doc_id]).fetchone()[0]
            assert (n, p) == (chunk_count, pages)
        fts = db.execute("select count(*) from chunks_fts").fetchone()[0]
        assert fts == db.execute("select count(*) from chunks").fetchone()[0]
    return len(docs)


# -- other formats and imported texts --------------------------------------------------
def test_fb2_and_plain_text(invoke, tmp_path, index_path):
    (tmp_path / "book.fb2").write_text(
        '<?xml version="1.0" encoding="utf-8"?><FictionBook xmlns="http://www.gribuser.ru/'
        'xml/fictionbook/2.0"><description><title-info><book-title>FB Book</book-title>'
        '</title-info></description><body><section><p>Hello from a fiction book.</p>'
        '</section></body></FictionBook>', encoding="utf-8")
    (tmp_path / "latin1.txt").write_bytes("Caf\xe9 cr\xe8me\x0cpage two".encode("cp1252"))
    result, data = ingest_json(invoke, tmp_path)
    assert result.exit_code == 0, result.output
    with Index(index_path) as index:
        book = index.document("book.fb2")
        assert book["title"] == "FB Book" and book["format"] == "fb2"
        assert "fiction book" in index.chunks(book["id"])[0]["text"]
        txt = index.document("latin1.txt")
        assert txt["pages"] == 2
        assert [c["text"] for c in index.chunks(txt["id"])] == ["Café crème", "page two"]


def test_store_text_document(index):
    text = "Imported sentence about a merger.\n\nSecond paragraph."
    doc_id = ingest_module.store_text_document(index, text, title="from labels.csv")
    assert ingest_module.store_text_document(index, text) == doc_id
    row = index.document(doc_id)
    assert row["path"].startswith("import:") and row["source"] == "import"
    assert (row["status"], row["pages"], row["title"]) == ("ok", 1, "from labels.csv")
    chunks = index.chunks(doc_id)
    assert [c["text"] for c in chunks] == [text]
    assert index.one("select text from pages where document_id = ?", [doc_id])["text"] == text
    other = ingest_module.store_text_document(index, "Another text.", key="row-7")
    assert index.document(other)["path"] == "import:row-7"
    # inside the caller's transaction: rolled back with it
    with pytest.raises(RuntimeError):
        with index.write():
            ingest_module.store_text_document(index, "Rolled back text.")
            raise RuntimeError
    assert index.scalar("select count(*) from documents") == 2
    with pytest.raises(Exception, match="cannot store an empty text"):
        ingest_module.store_text_document(index, "  ")


def test_extract_options_time_limit():
    options = ExtractOptions(max_seconds=0.01).start()
    time.sleep(0.05)
    with pytest.raises(ExtractionError, match=r"took longer than 0.01 s \(--max-seconds\)"):
        options.check_time()


# -- the real corpora (../shared/data) -----------------------------------------------
def manifest(folder: Path) -> list[dict]:
    with open(folder / "MANIFEST.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_shared_pdfs_every_file_ends_with_a_status(invoke, shared_data, index_path):
    """237 real PDFs (OCR off, so it takes seconds): every file gets a row and a status,
    every failure a reason, every chunk fits the model's window by the real tokenizer."""
    pdfs = shared_data / "pdfs"
    rows = manifest(pdfs)
    result, data = ingest_json(invoke, pdfs, "--ocr", "off")
    assert result.exit_code == 3
    files = {r["path"]: r for r in data["results"]}
    for row in rows:
        r = files[str((pdfs / row["path"]).resolve())]
        assert r["status"] in ("ok", "empty", "needs_ocr", "encrypted", "failed")
        assert r["status"] == "ok" or r["error"], r
        if row["condition"] == "encrypted-needs-password":
            assert r["status"] == "encrypted" and "--password" in r["error"]
        if row["condition"] == "broken":
            assert r["status"] == "failed"
        if row["text_layer"].startswith("image-only"):
            assert r["status"] in ("needs_ocr", "encrypted"), row["path"]
        if row["text_layer"] == "text" and row["condition"].startswith("ok"):
            assert r["status"] == "ok" and r["chunks"] > 0, row["path"]
    from doctagger.chunking import get_counter

    tokenizer = get_counter().tokenizer
    with Index(index_path) as index:
        assert index.scalar("select count(*) from documents") == len(data["results"])
        pages = {(r["document_id"], r["page"]): r["text"]
                 for r in index.query("select document_id, page, text from pages")}
        chunks = index.query("select document_id, page, char_start, char_end, text, tokens "
                             "from chunks")
    assert len(chunks) > 1000
    real = [len(e.ids) for e in tokenizer.encode_batch([c["text"] for c in chunks])]
    assert max(real) <= 200
    assert real == [c["tokens"] for c in chunks]  # the stored count is exact
    for c in chunks:
        assert pages[(c["document_id"], c["page"])][c["char_start"]:c["char_end"]] == c["text"]
    # incremental: nothing to do the second time
    result, again = ingest_json(invoke, pdfs, "--ocr", "off")
    assert again["pages"] == 0 and again["new"] == again["changed"] == 0
    assert again["unchanged"] + again["failed"] == again["files"]
    assert again["seconds"] < data["seconds"] / 5


def test_shared_encrypted_pdfs_open_with_their_passwords(invoke, shared_data):
    pdfs = shared_data / "pdfs"
    locked = [r for r in manifest(pdfs) if r["condition"] == "encrypted-needs-password"]
    passwords = set()
    for r in locked:
        for part in r["passwords"].split():
            passwords.add(part.split("=", 1)[1])
    args = [pdfs / r["path"] for r in locked]
    for pw in sorted(passwords):
        args += ["--password", pw]
    result, data = ingest_json(invoke, *args, "--ocr", "off")
    assert {r["status"] for r in data["results"]} <= {"ok", "empty", "needs_ocr"}, [
        (r["path"], r["error"]) for r in data["results"] if r["status"] == "encrypted"]


def test_shared_bad_and_malformed_files_with_ocr_on(invoke, shared_data, index_path):
    """Every damaged, fuzzed, broken or locked file, OCR on: no exception escapes, every
    file ends with a status, every failure has its reason."""
    bad = [shared_data / "pdfs" / r["path"] for r in manifest(shared_data / "pdfs")
           if not r["condition"].startswith("ok") and r["text_layer"] != "image-only (scanned/raster, needs OCR)"]
    malformed = shared_data / "pdfs_malformed"
    result, data = ingest_json(invoke, malformed, *bad, "--ocr", "auto")
    assert result.exit_code == 3
    expected = {str(p.resolve()) for p in malformed.rglob("*.pdf")} | {str(p.resolve()) for p in bad}
    got = {r["path"] for r in data["results"]}
    assert expected <= got
    for r in data["results"]:
        assert r["status"] == "ok" or r["error"], r
        assert "Traceback" not in (r["error"] or "")
    with Index(index_path) as index:
        assert index.scalar("select count(*) from documents where status != 'ok' and "
                            "coalesce(error, '') = ''") == 0


def test_discover_walks_folders_as_documented(tmp_path):
    """Files an extractor reads, recursively; links to files count, links to folders are
    not followed; hidden names, the index folder and unreadable folders are left out; a
    file named on the command line is taken whatever its suffix."""
    import os

    from doctagger.ingest import discover

    root = tmp_path / "tree"
    (root / "a" / "b").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "index").mkdir()
    (root / "locked").mkdir()
    for rel in ["one.pdf", "a/two.PDF", "a/b/three.txt", "a/skip.csv", ".hidden.pdf",
                ".git/four.pdf", "index/five.pdf", "locked/six.pdf"]:
        (root / rel).write_text("x")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "seven.pdf").write_text("x")
    os.symlink(outside / "seven.pdf", root / "link.pdf")
    os.symlink(outside, root / "linked-folder")
    os.symlink(root / "missing.pdf", root / "broken.pdf")
    (root / "locked").chmod(0)
    try:
        found = discover([root], skip=[root / "index"])
        if os.access(root / "locked", os.R_OK):  # running as root: the folder is readable
            found = [p for p in found if p.parent.name != "locked"]
    finally:
        (root / "locked").chmod(0o755)
    names = sorted(str(p.relative_to(root.resolve())) for p in found)
    assert names == ["a/b/three.txt", "a/two.PDF", "link.pdf", "one.pdf"]
    assert all(p.is_absolute() for p in found)
    assert discover([root / "a" / "skip.csv"]) == [(root / "a" / "skip.csv").resolve()]


def test_workers_start_before_hashing_only_into_an_empty_index(invoke, docs_dir, monkeypatch):
    """A first ingest extracts everything, so its workers start (and import PyMuPDF)
    while the files are hashed; later runs start them only when something changed."""
    events = []
    real_pool, real_decide = ingest_module.Pool, ingest_module._decide

    class Pool(real_pool):
        def __init__(self, *args, **kwargs):
            events.append("pool")
            super().__init__(*args, **kwargs)

    def decide(*args, **kwargs):
        events.append("hash")
        return real_decide(*args, **kwargs)

    monkeypatch.setattr(ingest_module, "Pool", Pool)
    monkeypatch.setattr(ingest_module, "_decide", decide)
    result, data = ingest_json(invoke, docs_dir, "--workers", "2")
    assert result.exit_code == 0 and data["new"] == 3
    assert events == ["pool", "hash"]
    events.clear()
    assert ingest_json(invoke, docs_dir, "--workers", "2")[1]["unchanged"] == 3
    assert events == ["hash"]  # nothing to extract: no worker at all
    events.clear()
    (docs_dir / "notes.md").write_text("# Notes\n\nChanged.\n", encoding="utf-8")
    assert ingest_json(invoke, docs_dir, "--workers", "2")[1]["changed"] == 1
    assert events == ["hash", "pool"]


def test_no_worker_outlives_a_failing_run(docs_dir, index_path):
    """Workers started early (empty index) are stopped whatever fails later in the run."""
    import multiprocessing

    from doctagger.ingest import IngestOptions, ingest

    def broken(n):
        raise RuntimeError("the progress bar broke")

    with Index(index_path) as index:
        with pytest.raises(RuntimeError, match="progress bar"):
            ingest(index, [docs_dir], IngestOptions(workers=2, ocr="off"), on_start=broken)
    assert not [p for p in multiprocessing.active_children() if p.name == "doctagger-ingest"]
