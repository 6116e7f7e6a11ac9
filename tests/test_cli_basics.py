"""The read commands (docs, show, status, search), --help and --version, over a tiny corpus
ingested in the test; that --help stays light; that migrations build an empty database."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time

import pytest

from tests.test_ingest import make_pdf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def ingested(invoke, tmp_path):
    folder = tmp_path / "corpus"
    make_pdf(folder / "heart.pdf", [["Myocardial infarction is a heart attack.",
                                     "Aspirin lowers the risk of another one."],
                                    ["Page two discusses statins and cholesterol."]],
             title="Heart disease", author="Dr Who")
    make_pdf(folder / "lungs.pdf", [["Asthma narrows the airways of the lungs."]])
    (folder / "broken.pdf").write_bytes(b"")
    result = invoke("ingest", folder)
    assert result.exit_code == 3, result.output
    return folder


def test_docs_lists_documents(invoke, ingested):
    result = invoke("docs")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["id", "status", "pages", "chunks", "path", "title"]
    assert any(line.split()[1:4] == ["ok", "2", "2"] and line.endswith("Heart disease")
               for line in lines), result.output
    rows = json.loads(invoke("docs", "--json").output)
    assert {os.path.basename(r["path"]): (r["status"], r["pages"], r["chunks"]) for r in rows} == {
        "heart.pdf": ("ok", 2, 2), "lungs.pdf": ("ok", 1, 1), "broken.pdf": ("failed", None, 0)}
    failed = json.loads(invoke("docs", "--failed", "--json").output)
    assert [(os.path.basename(r["path"]), r["error"]) for r in failed] == [
        ("broken.pdf", "empty file (0 bytes)")]
    assert "empty file (0 bytes)" in invoke("docs", "--failed").output
    assert len(json.loads(invoke("docs", "--limit", "1", "--json").output)) == 1


def test_docs_on_an_empty_index(invoke):
    result = invoke("docs")
    assert result.exit_code == 0
    assert "No documents." in result.output


def test_show_a_document(invoke, ingested):
    result = invoke("show", "heart.pdf")
    assert result.exit_code == 0, result.output
    assert "title:        Heart disease" in result.output
    assert "author:       Dr Who" in result.output
    assert "Chunks (2):" in result.output
    assert "p2 (" in result.output and "Page two discusses statins" in result.output
    data = json.loads(invoke("show", "heart.pdf", "--json").output)
    assert data["document"]["pages"] == 2
    chunk = data["chunks"][0]
    assert chunk["text"].startswith("Myocardial infarction") and len(chunk["bbox"]) == 4
    assert chunk["page"] == 1 and chunk["tokens"] > 5
    by_id = invoke("show", str(data["document"]["id"]), "--text")
    assert "Aspirin lowers the risk of another one." in by_id.output


def test_show_an_unknown_document(invoke, ingested):
    result = invoke("show", "nothing.pdf")
    assert result.exit_code == 1
    assert "Error: no document 'nothing.pdf' in the index; list them with 'doctagger docs'" in result.output


def test_status(invoke, ingested):
    result = invoke("status")
    assert result.exit_code == 0
    assert "Documents:  3 (1 failed, 2 ok)" in result.output
    assert "Pages:      3" in result.output and "Chunks:     3" in result.output
    data = json.loads(invoke("status", "--json").output)
    assert (data["documents"], data["failed"], data["chunks"]) == (3, 1, 3)
    assert data["documents_by_status"] == {"failed": 1, "ok": 2}


def test_search(invoke, ingested):
    result = invoke("search", "heart attack")
    assert result.exit_code == 0
    assert "heart.pdf  p1" in result.output and "[heart]" in result.output
    rows = json.loads(invoke("search", "cholesterol", "--json").output)
    assert len(rows) == 1 and rows[0]["page"] == 2
    assert rows[0]["path"].endswith("heart.pdf")
    assert json.loads(invoke("search", "airway*", "--json").output)[0]["path"].endswith("lungs.pdf")
    # a stray quote is not FTS syntax: searched as plain words
    assert invoke("search", '"lungs').exit_code == 0
    none = invoke("search", "zebra")
    assert none.exit_code == 0 and "No matches." in none.output
    bad = invoke("search")
    assert bad.exit_code == 1
    assert "give TEXT to search for" in bad.output


def test_help_and_version(invoke):
    result = invoke("--help")
    assert result.exit_code == 0
    for name in ("ingest", "docs", "show", "status", "search"):
        assert f"\n  {name} " in result.output
    assert invoke("--version").output.startswith("doctagger, version ")
    ingest_help = invoke("ingest", "--help").output
    assert "Exit codes:" in ingest_help and "3  the run finished" in ingest_help


def _help_in_subprocess(args=("--help",)) -> tuple[float, list[str]]:
    code = ("import sys, time\n"
            "t = time.perf_counter()\n"
            "from doctagger.cli import cli\n"
            "try:\n"
            f"    cli.main({list(args)!r}, prog_name='doctagger')\n"
            "except SystemExit:\n"
            "    pass\n"
            "print(time.perf_counter() - t, file=sys.stderr)\n"
            "heavy = ('torch', 'transformers', 'pymupdf', 'fitz', 'datasets', 'accelerate',\n"
            "         'evaluate', 'sklearn', 'numpy', 'pandas', 'tokenizers', 'onnxruntime')\n"
            "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in heavy)),\n"
            "      file=sys.stderr)\n")
    env = {**os.environ, "PYTHONPATH": REPO}
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, cwd=REPO, check=True)
    wall = time.perf_counter() - started
    lines = out.stderr.strip().splitlines()
    return wall, lines[-1].split() if len(lines) > 1 else []


def test_help_imports_nothing_heavy():
    """`doctagger --help` must answer in well under a second: torch, transformers, PyMuPDF
    (and numpy/pandas, which sqlite-utils pulls in) are imported lazily."""
    _, heavy = _help_in_subprocess()
    assert heavy == []


def test_index_commands_do_not_import_pandas(tmp_path):
    """sqlite-utils would import pandas (0.2-0.4 s) for nothing doctagger uses."""
    _, heavy = _help_in_subprocess(["--index", str(tmp_path / "idx"), "status"])
    assert (tmp_path / "idx" / "doctagger.db").exists()
    assert not [m for m in heavy if m.split(".")[0] in ("pandas", "torch", "pymupdf")]


def test_import_without_leaves_a_loaded_module_alone(monkeypatch):
    import types

    from doctagger.lightimports import import_without

    fake = types.ModuleType("fake_optional")
    monkeypatch.setitem(sys.modules, "fake_optional", fake)
    assert import_without("json", "fake_optional") is sys.modules["json"]
    assert sys.modules["fake_optional"] is fake
    monkeypatch.delitem(sys.modules, "fake_optional")
    import_without("colorsys", "fake_optional")
    assert "fake_optional" not in sys.modules


def test_migrations_build_an_empty_database_and_are_idempotent(tmp_path):
    import sqlite_utils

    from doctagger.index import Index
    from doctagger.migrations import migrations

    db = sqlite_utils.Database(tmp_path / "fresh.db")
    assert migrations.pending(db)
    migrations.apply(db)
    tables = set(db.table_names())
    assert {"documents", "pages", "chunks", "chunks_fts", "tasks", "labels", "models",
            "predictions", "document_tags"} <= tables
    assert not migrations.pending(db)
    migrations.apply(db)  # again: nothing happens
    assert set(db.table_names()) == tables
    db.close()
    index = Index(tmp_path / "idx")  # an index folder made from nothing
    assert index.db.journal_mode == "wal"
    assert index.counts()["documents"] == 0
    index.close()
    again = Index(tmp_path / "idx")
    assert not migrations.pending(again.db)
    again.close()
    conn = sqlite3.connect(tmp_path / "idx" / "doctagger.db")
    assert conn.execute("pragma foreign_key_check").fetchall() == []
    conn.close()


def test_an_index_folder_holding_something_else(invoke, tmp_path):
    """A doctagger.db that is not a database (or is a folder) is the user's mistake: one
    line naming the file, not an 'unexpected error'."""
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "doctagger.db").write_text("my notes")
    r = invoke("--index", tmp_path / "a", "status")
    assert r.exit_code == 1
    assert f"Error: {tmp_path / 'a' / 'doctagger.db'} is not a doctagger index (SQLite: file " \
           "is not a database); point --index (or DOCTAGGER_INDEX) at another folder" in r.output
    assert (tmp_path / "a" / "doctagger.db").read_text() == "my notes"  # left as it was
    (tmp_path / "b" / "doctagger.db").mkdir(parents=True)
    r = invoke("--index", tmp_path / "b", "docs")
    assert r.exit_code == 1 and "doctagger.db is a folder, not a database" in r.output


def test_an_index_that_is_a_file_says_where_it_was_set(invoke, tmp_path, monkeypatch):
    f = tmp_path / "notes.txt"
    f.write_text("x")
    r = invoke("--index", f, "status")
    assert r.exit_code == 2 and f"--index {f} is a file; the index is a folder" in r.output
    monkeypatch.setenv("DOCTAGGER_INDEX", str(f))
    from doctagger.cli import cli
    from click.testing import CliRunner

    r = CliRunner().invoke(cli, ["status"])
    assert r.exit_code == 2 and f"DOCTAGGER_INDEX={f} is a file" in r.output


def test_an_index_path_that_cannot_be_a_folder(invoke, tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("x")
    r = invoke("--index", f / "sub", "status")
    assert r.exit_code == 1
    assert f"cannot use {f / 'sub'} as the index folder (Not a directory); point --index" \
        in r.output and "unexpected error" not in r.output
