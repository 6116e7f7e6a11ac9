"""Killed anywhere: SIGKILL at seeded random moments of the real `ingest`, `import`, `train`
and `tag` commands (subprocesses), then the index is checked and the command run again.

After every kill: `PRAGMA integrity_check` and the FTS index are ok, no foreign key dangles,
no document, chunk, prediction or document tag is duplicated, every document holds all its
chunks, every label that existed before is still there with its value, every registered
model version has its folder and doctagger.json and no ``vN`` folder is visible without its
row. After the re-run: the index holds exactly what an uninterrupted run gives (compared
item by item, not only counted), and what killed runs left behind has been tidied.

Besides the random moments, the worst ones are hit on purpose: a training run killed between
renaming its folder and committing its row, and a tag run killed between writing
predictions and rolling them up.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.fakes import (WORDS, FakePlugin, add_corpus, add_document, add_model,
                         create_task, make_pdf)

REPO = Path(__file__).resolve().parents[1]
SEEDS = [0, 1, 2]

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL") or sys.platform == "win32",
                                reason="needs SIGKILL and fork")


# -- running the real CLI in a subprocess ---------------------------------------------------
def command(*args, fakes: bool = False) -> list[str]:
    """The doctagger CLI (``tests.fakes`` adds the fake task types to it)."""
    return [sys.executable, "-m", "tests.fakes" if fakes else "doctagger", *map(str, args)]


def environment(index_path: Path, **extra) -> dict:
    env = dict(os.environ, DOCTAGGER_INDEX=str(index_path), HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    env.pop("DOCTAGGER_RAISE_ERRORS", None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run(args, index_path: Path, *, fakes: bool = False, timeout: float = 180,
        **env) -> subprocess.CompletedProcess:
    """Run the CLI to the end; assert that it succeeded."""
    proc = subprocess.run(command(*args, fakes=fakes), cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env=environment(index_path, **env))
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc


def run_timed(args, index_path: Path, **env) -> float:
    """Run the CLI to the end; return how long it ran after its first commit."""
    watcher = sqlite3.connect(index_path / "doctagger.db", isolation_level=None)
    start_version = data_version(watcher)
    proc = subprocess.Popen(command(*args), cwd=REPO, env=environment(index_path, **env),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first = None
    while proc.poll() is None:
        if first is None and data_version(watcher) != start_version:
            first = time.monotonic()
        time.sleep(0.005)
    watcher.close()
    assert proc.returncode == 0, proc.stderr.read().decode(errors="replace")[-3000:]
    return time.monotonic() - (first or time.monotonic())


def data_version(db: sqlite3.Connection) -> int:
    return db.execute("pragma data_version").fetchone()[0]


def run_and_kill(args, index_path: Path, *, seed: int = 0,
                 window: tuple[float, float] | None, after_commit: bool = False,
                 fakes: bool = False, argv: list | None = None, **env) -> dict:
    """Start the CLI and SIGKILL it ``uniform(*window)`` seconds (seeded) after it started,
    or after its first commit to the index with ``after_commit``; ``window`` None: it kills
    itself (``argv`` runs a driver that does). Asserts that it was still running when
    killed, and that no process it started outlives it for long (ingest workers must
    notice that their parent is gone)."""
    delay = random.Random(seed).uniform(*window) if window else 120.0
    what = " ".join(map(str, argv or args))[:200]
    watcher = sqlite3.connect(index_path / "doctagger.db", isolation_level=None)
    start_version = data_version(watcher)
    proc = subprocess.Popen(argv or command(*args, fakes=fakes), cwd=REPO,
                            env=environment(index_path, **env), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        started = time.monotonic()
        if after_commit:
            while proc.poll() is None and data_version(watcher) == start_version:
                assert time.monotonic() - started < 120, "the command never wrote"
                time.sleep(0.005)
            started = time.monotonic()
        while proc.poll() is None and time.monotonic() - started < delay:
            time.sleep(0.005)
        finished = proc.poll() is not None and window is not None
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        stderr = proc.stderr.read().decode(errors="replace")
        assert not finished, (f"{what} finished (exit {proc.returncode}) before the kill "
                              f"at {delay:.2f} s: {stderr[-2000:]}")
        assert proc.returncode == -signal.SIGKILL, stderr[-2000:]
        deadline = time.monotonic() + 10
        while _group_alive(proc.pid):
            assert time.monotonic() < deadline, f"processes of the killed {what} live on"
            time.sleep(0.05)
    finally:
        if _group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
        watcher.close()
    return {"delay": delay}


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover
        return True
    return True


# -- what must hold after any kill ----------------------------------------------------------
def connect(index_path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(index_path / "doctagger.db", isolation_level=None)
    db.row_factory = sqlite3.Row
    return db


def label_rows(index_path: Path) -> dict[int, tuple]:
    with connect(index_path) as db:
        return {r["id"]: (r["task_id"], r["target"], r["document_id"], r["value"], r["source"])
                for r in db.execute("select * from labels")}


def check_index(index_path: Path, labels_before: dict[int, tuple] | None = None, *,
                after_kill: bool = True) -> None:
    """Everything that must hold in an index whatever moment its writer died at."""
    db = connect(index_path)
    try:
        assert [tuple(r) for r in db.execute("pragma integrity_check")] == [("ok",)]
        assert list(db.execute("pragma foreign_key_check")) == []
        # the full-text index agrees with the chunks table (raises SQLITE_CORRUPT_VTAB if not)
        db.execute("insert into chunks_fts(chunks_fts, rank) values ('integrity-check', 1)")

        def none(sql):
            rows = [tuple(r) for r in db.execute(sql)]
            assert rows == [], f"{sql}: {rows[:5]}"

        none("select sha256 from documents where status in ('ok', 'empty') "
             "and sha256 is not null group by sha256 having count(*) > 1")
        none("select path from documents group by path having count(*) > 1")
        none("select document_id, seq from chunks group by 1, 2 having count(*) > 1")
        none("select d.id, d.chunk_count, count(c.id) from documents d left join chunks c "
             "on c.document_id = d.id group by d.id having d.chunk_count != count(c.id)")
        none("select d.id from documents d where d.status = 'ok' and not exists "
             "(select 1 from pages p where p.document_id = d.id)")
        none("select model_id, chunk_id from predictions group by 1, 2 having count(*) > 1")
        none("select task_id, document_id, label, extra from document_tags "
             "group by 1, 2, 3, 4 having count(*) > 1")
        none("select t.name from tasks t where t.active_model_id is not null and not exists "
             "(select 1 from models m where m.id = t.active_model_id)")
        if labels_before is not None:
            after = {r["id"]: (r["task_id"], r["target"], r["document_id"], r["value"],
                               r["source"]) for r in db.execute("select * from labels")}
            lost = {k: v for k, v in labels_before.items() if after.get(k) != v}
            assert not lost, f"{len(lost)} labels lost or changed, e.g. {list(lost.items())[:3]}"
        registered = set()
        for row in db.execute("select m.path, m.version, t.name from models m "
                              "join tasks t on t.id = m.task_id"):
            folder = index_path / row["path"]
            assert (folder / "doctagger.json").is_file(), f"{row['path']} is half-registered"
            registered.add(folder.resolve())
        models = index_path / "models"
        for folder in (models.glob("*/v*") if models.is_dir() else []):
            if folder.is_dir() and folder.name[1:].isdigit():
                assert folder.resolve() in registered, f"{folder} has no models row"
        if not after_kill:  # a completed run tidies what killed ones left behind
            assert not list(models.glob("*/.tmp-*")) if models.is_dir() else True
            assert not list(index_path.glob(".tagging/*.running"))
    finally:
        db.close()


def snapshot(index_path: Path) -> dict:
    """The index's content, keyed by what stays the same from one index to another (file
    names, chunk order, task names, version numbers), to compare a killed-and-rerun index
    with an uninterrupted one item by item."""
    db = connect(index_path)
    try:
        def doc(path):
            return Path(path).name if not path.startswith("import:") else path

        docs = {r["id"]: doc(r["path"]) for r in db.execute("select id, path from documents")}
        seqs = {r["id"]: (docs[r["document_id"]], r["seq"])
                for r in db.execute("select id, document_id, seq from chunks")}
        tasks = {r["id"]: r["name"] for r in db.execute("select id, name from tasks")}
        versions = {r["id"]: (tasks[r["task_id"]], r["version"])
                    for r in db.execute("select id, task_id, version from models")}
        return {
            "documents": sorted((docs[r["id"]], r["sha256"], r["status"], r["pages"],
                                 r["chunk_count"]) for r in db.execute("select * from documents")),
            "pages": sorted((docs[r["document_id"]], r["page"], r["text"])
                            for r in db.execute("select * from pages")),
            "chunks": sorted((*seqs[r["id"]], r["text_hash"], r["page"], r["char_start"])
                             for r in db.execute("select * from chunks")),
            "labels": sorted((tasks[r["task_id"]], r["target"], docs[r["document_id"]],
                              seqs[r["chunk_id"]] if r["chunk_id"] else (), r["text_hash"],
                              r["value"], r["source"])
                             for r in db.execute("select * from labels")),
            "models": sorted((tasks[r["task_id"]], r["version"], r["metrics"])
                             for r in db.execute("select * from models")),
            "active": sorted((r["name"], versions.get(r["active_model_id"]))
                             for r in db.execute("select * from tasks")),
            "predictions": sorted((*versions[r["model_id"]], *seqs[r["chunk_id"]], r["value"],
                                   round(r["score"], 6), r["review"])
                                  for r in db.execute("select * from predictions")),
            "document_tags": sorted((*versions[r["model_id"]], docs[r["document_id"]],
                                     r["label"], r["score"],
                                     json.dumps([seqs[c] for c in json.loads(r["chunks"])]))
                                    for r in db.execute("select * from document_tags")),
        }
    finally:
        db.close()


@pytest.fixture
def fakes(monkeypatch, register_plugin):
    """The fake task types in this process (and no installed plugin)."""
    from doctagger import plugins

    monkeypatch.setenv("DOCTAGGER_LOAD_PLUGINS", "")
    plugins.reset()
    register_plugin(FakePlugin(), "fakes")


def open_index(path: Path):
    from doctagger.index import Index

    return Index(path)


# -- ingest ---------------------------------------------------------------------------------
N_FILES, N_NEW = 120, 80


def _page(rng: random.Random, i: int, p: int) -> list[str]:
    return [" ".join(rng.choice(WORDS) for _ in range(10)) + f" file {i} page {p} line {n}."
            for n in range(5)]


@pytest.fixture(scope="module")
def pdf_sets(tmp_path_factory):
    """``v1/``: N_FILES small PDFs. ``v2/``: what changes after v1 was ingested: every
    third file gets a new last page (its labels re-attach), every sixth a new first page
    (its first-page labels are orphaned), and N_NEW new files arrive."""
    root = tmp_path_factory.mktemp("pdfs")
    rng = random.Random(7)
    for i in range(N_FILES):
        pages = [_page(rng, i, p) for p in range(rng.randint(1, 3))]
        make_pdf(root / "v1" / f"file{i:03d}.pdf", pages)
        if i % 6 == 0:
            make_pdf(root / "v2" / f"file{i:03d}.pdf", [_page(rng, i, 99)] + pages[1:])
        elif i % 3 == 0:
            make_pdf(root / "v2" / f"file{i:03d}.pdf", pages + [_page(rng, i, 100)])
    for i in range(N_FILES, N_FILES + N_NEW):
        make_pdf(root / "v2" / f"file{i:03d}.pdf", [_page(rng, i, p) for p in range(2)])
    return root / "v1", root / "v2"


def _ingest_v1_and_label(pdfs: Path, index_path: Path, v1: Path) -> None:
    """v1 ingested (in this process), labels on its chunks and documents."""
    from doctagger.ingest import IngestOptions, ingest
    from doctagger.labels import save_label

    shutil.copytree(v1, pdfs)
    with open_index(index_path) as index:
        assert ingest(index, [pdfs], IngestOptions(workers=0, ocr="off")).failed == 0
        create_task(index, "topic")
        create_task(index, "kind", level="document")
        topic, kind = index.task("topic"), index.task("kind")
        with index.write():
            for chunk in index.query("select id, text from chunks "
                                     "where id % 2 = 0 or document_id % 3 = 1"):
                value = next((w for w in ("cardio", "neuro") if w in chunk["text"]), "other")
                save_label(index, topic, value, chunk_id=chunk["id"])
            for doc in index.query("select id from documents where id % 5 = 0"):
                save_label(index, kind, "other", document_id=doc["id"])


@pytest.fixture(scope="module")
def ingest_expected(pdf_sets, tmp_path_factory):
    """The uninterrupted run: v1 and its labels, then v2 ingested by the real CLI."""
    from doctagger import plugins

    v1, v2 = pdf_sets
    root = tmp_path_factory.mktemp("ingest-baseline")
    plugins.reset()
    plugins.register_plugin(FakePlugin(), "fakes")
    try:
        _ingest_v1_and_label(root / "pdfs", root / "index", v1)
    finally:
        plugins.reset()
    shutil.copytree(v2, root / "pdfs", dirs_exist_ok=True)
    writing = run_timed(["ingest", root / "pdfs", "--workers", "2", "--ocr", "off"],
                        root / "index")
    expected = snapshot(root / "index")
    assert sum(1 for label in expected["labels"] if label[3] == () and label[1] == "chunk"), \
        "the baseline orphans no label: the changed files do not test re-attachment"
    return expected, writing


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_ingest_killed_anywhere(seed, fakes, pdf_sets, ingest_expected, tmp_path):
    v1, v2 = pdf_sets
    expected, writing = ingest_expected
    pdfs, index_path = tmp_path / "pdfs", tmp_path / "index"
    _ingest_v1_and_label(pdfs, index_path, v1)
    shutil.copytree(v2, pdfs, dirs_exist_ok=True)
    before = label_rows(index_path)
    args = ["ingest", pdfs, "--workers", "2", "--ocr", "off"]
    # killed while it writes (between its first commit and 40% of the time an
    # uninterrupted run writes: a margin for a machine whose load changed since that run,
    # which made 60% too late once): re-extracting changed files, re-attaching their
    # labels, storing new ones
    run_and_kill(args, index_path, seed=seed, window=(0.0, 0.4 * writing), after_commit=True)
    check_index(index_path, before)
    run(args, index_path)
    check_index(index_path, before, after_kill=False)
    assert snapshot(index_path) == expected


# -- import ---------------------------------------------------------------------------------
def _write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def _import_setup(root: Path) -> tuple[Path, Path]:
    """An index with a task and 200 imported labels, and a CSV of 2,000 more."""
    from doctagger.importer import import_labels

    rng = random.Random(3)
    labels = ("cardio", "neuro", "other")

    def rows(n, start):
        out = []
        for i in range(start, start + n):
            label = labels[i % 3]
            text = f"Record {i}: " + " ".join(rng.choice(WORDS) for _ in range(12)) + f" {label}."
            out.append((text, label))
        return out

    root.mkdir(parents=True, exist_ok=True)
    with open_index(root / "index") as index:
        create_task(index, "topic")
        import_labels(index, "topic", _write_csv(root / "first.csv", rows(200, 0)))
    return root / "index", _write_csv(root / "big.csv", rows(2000, 200))


@pytest.fixture(scope="module")
def import_baseline(tmp_path_factory):
    """An uninterrupted `import` of the big file: the index content, and how long it ran."""
    from doctagger import plugins

    root = tmp_path_factory.mktemp("import-baseline")
    plugins.reset()
    plugins.register_plugin(FakePlugin(), "fakes")
    try:
        index_path, big = _import_setup(root)
    finally:
        plugins.reset()
    started = time.monotonic()
    run(["import", "topic", big], index_path, fakes=True, DOCTAGGER_LOAD_PLUGINS="")
    return snapshot(index_path), time.monotonic() - started


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_import_killed_anywhere(seed, fakes, import_baseline, tmp_path):
    expected, seconds = import_baseline
    index_path, big = _import_setup(tmp_path)
    before = label_rows(index_path)
    # anywhere in the first 60% of an uninterrupted run (a margin for a busy machine):
    # starting, reading the file, matching records, storing imported texts
    run_and_kill(["import", "topic", big], index_path, seed=seed, window=(0.2, 0.6 * seconds),
                 fakes=True, DOCTAGGER_LOAD_PLUGINS="")
    check_index(index_path, before)
    # all or nothing: the file is one transaction
    assert len(label_rows(index_path)) in (len(before), len(expected["labels"]))
    run(["import", "topic", big], index_path, fakes=True, DOCTAGGER_LOAD_PLUGINS="")
    check_index(index_path, before, after_kill=False)
    assert snapshot(index_path) == expected


# -- tag ------------------------------------------------------------------------------------
def _tag_setup(index_path: Path, *, documents: int = 60, chunks: int = 50) -> None:
    """Documents of varied chunk lengths (so batches, sorted by length, mix documents),
    a chunk-level task with model v1, a few labels."""
    from doctagger.labels import save_label

    with open_index(index_path) as index:
        add_corpus(index, documents, chunks)
        create_task(index, "topic")
        add_model(index, "topic", 1)
        task = index.task("topic")
        for chunk_id in range(1, documents * chunks, 37):
            save_label(index, task, "cardio", chunk_id=chunk_id)


@pytest.fixture(scope="module")
def tag_template(tmp_path_factory):
    """The tag corpus (an index folder to copy), and the content of that index once an
    uninterrupted run tagged it."""
    from doctagger import plugins
    from doctagger.tagging import tag_task

    root = tmp_path_factory.mktemp("tag")
    plugins.reset()
    plugins.register_plugin(FakePlugin(), "fakes")
    try:
        _tag_setup(root / "template")
        shutil.copytree(root / "template", root / "expected")
        with open_index(root / "expected") as index:
            tag_task(index, "topic")
    finally:
        plugins.reset()
    return root / "template", snapshot(root / "expected")


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_tag_killed_anywhere(seed, tag_template, tmp_path):
    template, expected = tag_template
    index_path = tmp_path / "index"
    shutil.copytree(template, index_path)
    before = label_rows(index_path)
    # 3,000 chunks in batches of 32, 20 ms each: about 2 s of tagging after the first
    # commit, two pages of chunks, each rolled up into document tags after it is predicted
    run_and_kill(["tag", "topic", "--batch-size", 32], index_path, seed=seed,
                 window=(0.0, 1.4), after_commit=True, fakes=True,
                 DOCTAGGER_LOAD_PLUGINS="", DOCTAGGER_FAKE_SLEEP=0.02)
    check_index(index_path, before)
    run(["tag", "topic"], index_path, fakes=True, DOCTAGGER_LOAD_PLUGINS="")
    check_index(index_path, before, after_kill=False)
    assert snapshot(index_path) == expected


KILL_BEFORE_ROLLUP = textwrap.dedent("""
    import os, signal, sys
    from doctagger import tagging
    def rollup_documents(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)
    tagging.rollup_documents = rollup_documents
    from tests.fakes import main
    main(sys.argv[1:])
""")


def test_tag_killed_between_predictions_and_rollup(fakes, tmp_path):
    """The worst moment for tag: a page's predictions are written, its documents are not
    rolled up yet. The next run must roll them up although no chunk lacks a prediction."""
    from doctagger.tagging import tag_task

    index_path = tmp_path / "index"
    _tag_setup(index_path, documents=10, chunks=20)
    argv = [sys.executable, "-c", KILL_BEFORE_ROLLUP, "tag", "topic"]
    run_and_kill([], index_path, window=None, argv=argv, DOCTAGGER_LOAD_PLUGINS="")
    check_index(index_path)
    with connect(index_path) as db:
        assert db.execute("select count(*) from predictions").fetchone()[0] == 200
        assert db.execute("select count(*) from document_tags").fetchone()[0] == 0
    result = run(["tag", "topic", "--json"], index_path, fakes=True, DOCTAGGER_LOAD_PLUGINS="")
    assert json.loads(result.stdout)["chunks"] == 0
    check_index(index_path, after_kill=False)
    _tag_setup(tmp_path / "expected", documents=10, chunks=20)
    with open_index(tmp_path / "expected") as index:
        tag_task(index, "topic")
    assert snapshot(index_path) == snapshot(tmp_path / "expected")


# -- train ----------------------------------------------------------------------------------
def _train_setup(index_path: Path) -> None:
    """A task with 150 labelled chunks (50 a label) over 30 documents."""
    from doctagger.labels import save_label

    with open_index(index_path) as index:
        create_task(index, "topic")
        task = index.task("topic")
        for d in range(30):
            label = ("cardio", "neuro", "other")[d % 3]
            _, ids = add_document(index, f"/docs/t{d:02d}.pdf", [[
                f"doc {d} part {c}: a {label} note about {WORDS[(d + c) % len(WORDS)]}"
                for c in range(5)]])
            for chunk_id in ids:
                save_label(index, task, label, chunk_id=chunk_id)


@pytest.fixture(scope="module")
def train_baseline(tmp_path_factory):
    """An uninterrupted `train` with the fake task type (5 steps of 0.2 s): its index
    content, and how long it took."""
    from doctagger import plugins

    root = tmp_path_factory.mktemp("train-baseline")
    plugins.reset()
    plugins.register_plugin(FakePlugin(), "fakes")
    try:
        _train_setup(root / "index")
    finally:
        plugins.reset()
    started = time.monotonic()
    run(["train", "topic"], root / "index", fakes=True, DOCTAGGER_LOAD_PLUGINS="",
        DOCTAGGER_FAKE_SLEEP=0.2)
    return snapshot(root / "index"), time.monotonic() - started


def _versions(index_path: Path) -> list[int]:
    with connect(index_path) as db:
        return [r[0] for r in db.execute("select version from models order by version")]


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_train_killed_anywhere(seed, fakes, train_baseline, tmp_path):
    expected, seconds = train_baseline
    index_path = tmp_path / "index"
    _train_setup(index_path)
    before = label_rows(index_path)
    run_and_kill(["train", "topic"], index_path, seed=seed, window=(0.2, seconds * 0.75),
                 fakes=True, DOCTAGGER_LOAD_PLUGINS="", DOCTAGGER_FAKE_SLEEP=0.2)
    check_index(index_path, before)
    registered = _versions(index_path)
    assert registered in ([], [1])  # nothing, or the whole version
    run(["train", "topic"], index_path, fakes=True, DOCTAGGER_LOAD_PLUGINS="")
    check_index(index_path, before, after_kill=False)
    if not registered:
        assert snapshot(index_path) == expected
    else:  # killed after its commit, while exiting: the re-run made v2
        assert _versions(index_path) == [1, 2]


KILL_AFTER_RENAME = textwrap.dedent("""
    import os, signal, sys
    from doctagger import registry
    real_rename = os.rename
    def rename(src, dst):
        real_rename(src, dst)
        os.kill(os.getpid(), signal.SIGKILL)
    registry.os.rename = rename
    from tests.fakes import main
    main(sys.argv[1:])
""")


def test_train_killed_between_rename_and_commit(fakes, train_baseline, tmp_path):
    """The worst moment for train: the version's folder is renamed to vN, its row is not
    committed. Nothing is registered; the next run moves the folder aside and takes v1."""
    expected, _ = train_baseline
    index_path = tmp_path / "index"
    _train_setup(index_path)
    argv = [sys.executable, "-c", KILL_AFTER_RENAME, "train", "topic"]
    run_and_kill([], index_path, window=None, argv=argv, DOCTAGGER_LOAD_PLUGINS="")
    folder = index_path / "models" / "topic"
    assert (folder / "v1" / "doctagger.json").is_file() and _versions(index_path) == []
    run(["train", "topic"], index_path, fakes=True, DOCTAGGER_LOAD_PLUGINS="")
    check_index(index_path, after_kill=False)
    assert snapshot(index_path) == expected
    aside = list(folder.glob(".unregistered-v1-*"))
    assert len(aside) == 1 and (aside[0] / "model.safetensors").is_file()


def test_a_killed_runs_build_folder_is_removed_but_a_live_ones_is_kept(fakes, tmp_path):
    from doctagger import registry

    _train_setup(tmp_path / "index")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with open_index(tmp_path / "index") as index:
        folder = registry.task_models_dir(index, "topic")
        folder.mkdir(parents=True)
        (folder / f".tmp-v1-{dead.pid}-abcd").mkdir()
        (folder / f".tmp-v1-{os.getpid()}-efgh").mkdir()
        (folder / ".tmp-v1-old").mkdir()  # not ours to judge: left alone
        version, tmp = registry.new_version_dir(index, "topic")
        assert version == 1
        names = sorted(p.name for p in folder.iterdir())
        assert names == sorted([f".tmp-v1-{os.getpid()}-efgh", ".tmp-v1-old", tmp.name])


# -- the real classification plugin -----------------------------------------------------------
@pytest.mark.slow
def test_train_with_the_real_plugin_killed_anywhere(tmp_path):
    """`train --method head` of the real classification plugin on a tiny random BERT,
    killed at a random moment and run again: the same checks, with torch, transformers and
    scikit-learn in play. (Tag kills use the fake predictor above: what they test is the
    core's writing, which does not depend on the predictor.)"""
    pytest.importorskip("doctagger_classification")
    from doctagger.importer import import_labels
    from doctagger.tasks import create_task as create
    from doctagger.testing import tiny_bert

    index_path = tmp_path / "index"
    texts = [f"doc {d} part {c}: a {('cardio', 'neuro', 'other')[d % 3]} note about "
             f"{WORDS[(d + c) % len(WORDS)]}" for d in range(30) for c in range(5)]
    base = tiny_bert(tmp_path / "bert", texts)
    csv_path = _write_csv(tmp_path / "labels.csv", [(t, t.split(": a ")[1].split()[0])
                                                    for t in texts])
    with open_index(index_path) as index:
        create(index, "topic", type="classification", labels=["cardio", "neuro", "other"])
        import_labels(index, "topic", csv_path)
    before = label_rows(index_path)
    env = {"DOCTAGGER_LOAD_PLUGINS": "doctagger"}
    train = ["train", "topic", "--method", "head", "--base-model", base]
    # killed while importing torch and transformers, embedding, or fitting the head
    run_and_kill(train, index_path, seed=5, window=(1.0, 5.0), **env)
    check_index(index_path, before)
    assert _versions(index_path) == []
    run(train, index_path, **env)
    check_index(index_path, before, after_kill=False)
    assert _versions(index_path) == [1]
