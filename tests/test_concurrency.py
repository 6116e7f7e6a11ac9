"""Side by side: `label` and `import` write while `tag` runs over thousands of chunks, each
in its own process, as a person labels in one terminal while the tagger runs in another.

What makes it work (doctagger.index): WAL, so readers never wait for the writer; every
write transaction starts with BEGIN IMMEDIATE, so writers queue on the busy timeout (60 s)
instead of failing with "database is locked"; and tag writes in short batches, so nobody
waits long. The test asserts that every process exits 0 without a lock error, that they
really overlapped, and that no write was lost.
"""
from __future__ import annotations

import csv
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.fakes import FakePlugin, add_corpus, add_model, create_task

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS, CHUNKS = 80, 50  # 4,000 chunks
ANSWERS = 150  # labels given in `label`
IMPORTS, ROWS = 3, 200  # import files, new texts each


def command(*args) -> list[str]:
    return [sys.executable, "-m", "tests.fakes", *map(str, args)]


def environment(index_path: Path, **extra) -> dict:
    env = dict(os.environ, DOCTAGGER_INDEX=str(index_path), DOCTAGGER_LOAD_PLUGINS="",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    env.pop("DOCTAGGER_RAISE_ERRORS", None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


@pytest.fixture
def corpus(index_path, register_plugin, monkeypatch):
    from doctagger import plugins
    from doctagger.index import Index

    monkeypatch.setenv("DOCTAGGER_LOAD_PLUGINS", "")
    plugins.reset()
    register_plugin(FakePlugin(), "fakes")
    with Index(index_path) as index:
        add_corpus(index, DOCUMENTS, CHUNKS)
        create_task(index, "topic")
        add_model(index, "topic", 1)
    return index_path


def _csv(path: Path, start: int) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        for i in range(start, start + ROWS):
            label = ("cardio", "neuro", "other")[i % 3]
            writer.writerow([f"Imported passage {i} about {label} and other things.", label])
    return path


@pytest.mark.slow
def test_label_and_import_while_tag_runs(corpus, tmp_path):
    index_path = corpus
    files = [_csv(tmp_path / f"labels{n}.csv", n * ROWS) for n in range(IMPORTS)]
    watch = sqlite3.connect(index_path / "doctagger.db", isolation_level=None)

    def count(table):
        return watch.execute(f"select count(*) from {table}").fetchone()[0]

    # 4,000 chunks in batches of 32, 40 ms of "model" each: about 5 s of tagging, begun
    # while the others start (starting Python and torch takes them a few seconds too)
    tagger = subprocess.Popen(command("tag", "topic", "--batch-size", 32, "--json"), cwd=REPO,
                              env=environment(index_path, DOCTAGGER_FAKE_SLEEP=0.04),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    results: dict[str, subprocess.CompletedProcess] = {}

    def importer():
        for n, path in enumerate(files):
            results[f"import{n}"] = subprocess.run(
                command("import", "topic", path), cwd=REPO, env=environment(index_path),
                capture_output=True, text=True, timeout=300)

    thread = threading.Thread(target=importer)
    thread.start()
    labeller = subprocess.Popen(command("label", "topic", "--limit", ANSWERS), cwd=REPO,
                                env=environment(index_path), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    labeller_out = {}

    def feed():
        labeller_out["out"], labeller_out["err"] = labeller.communicate("2\n" * ANSWERS,
                                                                        timeout=300)

    feeder = threading.Thread(target=feed)
    feeder.start()
    overlapped = False
    while tagger.poll() is None:
        predictions, labels = count("predictions"), count("labels")
        if 0 < predictions < DOCUMENTS * CHUNKS and labels > 0:
            overlapped = True
        time.sleep(0.02)
    tag_out, tag_err = tagger.communicate(timeout=300)
    thread.join(300)
    feeder.join(300)
    results["label"] = subprocess.CompletedProcess(labeller.args, labeller.returncode,
                                                   labeller_out["out"], labeller_out["err"])
    results["tag"] = subprocess.CompletedProcess(tagger.args, tagger.returncode, tag_out,
                                                 tag_err)
    for name, result in results.items():
        assert result.returncode == 0, f"{name}: {result.stderr[-3000:]}"
        assert "locked" not in result.stderr.lower(), f"{name}: {result.stderr[-3000:]}"
    assert overlapped, "labels and predictions were never written at the same time"

    # no write lost: every answer, every imported record, every chunk tag started with
    db = watch
    assert db.execute("select count(*) from labels where source = 'human' and "
                      "value = '\"neuro\"'").fetchone()[0] == ANSWERS
    assert db.execute("select count(*) from labels where source = 'import'"
                      ).fetchone()[0] == IMPORTS * ROWS
    assert db.execute("select count(*) from chunks c where c.document_id <= ? and not exists "
                      "(select 1 from predictions p where p.chunk_id = c.id)",
                      [DOCUMENTS]).fetchone()[0] == 0
    assert db.execute("select count(*) from (select model_id, chunk_id from predictions "
                      "group by 1, 2 having count(*) > 1)").fetchone()[0] == 0
    assert db.execute("select count(distinct document_id) from document_tags "
                      "where document_id <= ?", [DOCUMENTS]).fetchone()[0] == DOCUMENTS
    # the passages imported meanwhile are tagged by the next run
    again = subprocess.run(command("tag", "topic"), cwd=REPO, env=environment(index_path),
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert count("predictions") == count("chunks") == DOCUMENTS * CHUNKS + IMPORTS * ROWS
    assert db.execute("pragma integrity_check").fetchone()[0] == "ok"
    watch.close()


def test_a_writer_waits_for_another_instead_of_failing(index_path, index):
    """Two connections, one holding the write lock for a while: the other's write() waits
    for it (busy timeout), then succeeds."""
    from doctagger.index import Index

    other = Index(index_path)
    released = threading.Event()

    def hold():
        with index.write() as db:
            db.execute("insert into tasks (name, type, labels, created_at) values "
                       "('held', 'x', '[]', 'now')")
            time.sleep(0.5)
        released.set()

    thread = threading.Thread(target=hold)
    thread.start()
    time.sleep(0.1)
    started = time.monotonic()
    with other.write() as db:
        db.execute("insert into tasks (name, type, labels, created_at) values "
                   "('waited', 'x', '[]', 'now')")
    waited = time.monotonic() - started
    thread.join()
    other.close()
    assert released.is_set() and waited >= 0.3
    assert {r["name"] for r in index.query("select name from tasks")} == {"held", "waited"}
