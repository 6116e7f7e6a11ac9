"""Start-up cost of the commands people run most: an ingest with nothing to do and `status`
import neither sqlite-utils nor anything heavy, the index is opened on a plain sqlite3
connection (the sqlite-utils Database is built at the first write), command modules are
imported when their command runs, and plugin entry points are read without
importlib.metadata. Each of these is checked in a fresh interpreter, where it shows."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.fakes import make_pdf

HEAVY = ("sqlite_utils", "pandas", "numpy", "torch", "transformers", "pymupdf", "fitz")


def _run(args, index_path) -> dict:
    """Run the CLI with ``args`` in a new interpreter; its exit code and the modules it
    imported."""
    code = ("import json, sys\n"
            "from doctagger.cli import main\n"
            "try:\n"
            f"    main({[str(a) for a in args]!r})\n"
            "    code = 0\n"
            "except SystemExit as exc:\n"
            "    code = exc.code\n"
            "from doctagger import entrypoints\n"
            "print(json.dumps({'exit_code': code, 'modules': sorted(sys.modules),\n"
            "                  'plain': entrypoints._plain_environment()}), file=sys.stderr)\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "DOCTAGGER_INDEX": str(index_path)}
    env.pop("DOCTAGGER_LOAD_PLUGINS", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, cwd=REPO, check=True)
    return json.loads(out.stderr.strip().splitlines()[-1])


def _heavy(modules) -> list[str]:
    return [m for m in modules if m.split(".")[0] in HEAVY]


@pytest.fixture
def folder(tmp_path):
    docs = tmp_path / "docs"
    make_pdf(docs / "a.pdf", [["The first document, about heart disease."]])
    (docs / "b.txt").write_text("A text file about kidneys.\n", encoding="utf-8")
    return docs


def test_unchanged_reingest_imports_nothing_heavy(folder, index_path):
    first = _run(["ingest", folder, "--workers", "0", "--ocr", "off", "--json"], index_path)
    assert first["exit_code"] == 0
    assert "sqlite_utils" in first["modules"]  # it wrote: writers build the Database
    again = _run(["ingest", folder, "--workers", "0", "--ocr", "off", "--json"], index_path)
    assert again["exit_code"] == 0
    assert _heavy(again["modules"]) == []
    if again["plain"]:
        assert "importlib.metadata" not in again["modules"]
    # the plugins were loaded all the same, and their extractors used
    assert {"doctagger_classification", "doctagger_ner"} <= set(again["modules"])
    with sqlite3.connect(index_path / "doctagger.db") as conn:
        assert conn.execute("select count(*) from documents where status = 'ok'").fetchone() == (2,)


def test_status_imports_nothing_heavy_and_only_its_command_module(index_path):
    new = _run(["status"], index_path)  # a brand-new folder: migrated
    assert new["exit_code"] == 0 and "sqlite_utils" in new["modules"]
    again = _run(["status"], index_path)
    assert again["exit_code"] == 0
    assert _heavy(again["modules"]) == []
    commands = sorted(m for m in again["modules"] if m.startswith("doctagger.cli."))
    assert commands == ["doctagger.cli.common", "doctagger.cli.documents"]


def test_a_new_index_is_migrated_and_a_second_open_builds_no_database(index_path):
    from doctagger.index import Index
    from doctagger.migrations import migrations, pending_names

    with Index(index_path) as index:
        assert "db" in index.__dict__  # it migrated, through sqlite-utils
        applied = [r["name"] for r in index.query(
            "select name from _sqlite_migrations where migration_set = 'doctagger' "
            "order by id")]
        assert applied == migrations.names
        assert pending_names(index.conn) == []
    with Index(index_path) as index:
        assert "db" not in index.__dict__
        assert index.counts()["documents"] == 0
        assert index.one("select count(*) as n from tasks") == {"n": 0}
        assert index.conn.execute("pragma journal_mode").fetchone() == ("wal",)
        assert index.conn.execute("pragma foreign_keys").fetchone() == (1,)
        assert index.conn.execute("pragma recursive_triggers").fetchone() == (1,)
        assert "db" not in index.__dict__
        with index.write() as db:
            assert db is index.db and type(db).__name__ == "Database"
            db["tasks"].insert({"name": "t", "type": "classification", "labels": "[]",
                                "created_at": "now"})
        assert index.scalar("select count(*) from tasks") == 1


def test_a_pending_migration_is_applied_once(index_path, monkeypatch):
    from doctagger.index import Index
    from doctagger.migrations import migrations, pending_names

    Index(index_path).close()
    calls = []

    def m999_test(db):
        calls.append(1)
        db.execute("CREATE TABLE extra (id INTEGER PRIMARY KEY)")

    monkeypatch.setattr(migrations, "registered",
                        [*migrations.registered, ("m999_test", m999_test, True)])
    monkeypatch.setattr(migrations, "_real", None)
    with sqlite3.connect(index_path / "doctagger.db") as conn:
        assert pending_names(conn) == ["m999_test"]
    with Index(index_path) as index:
        assert calls == [1]
        assert index.scalar("select count(*) from sqlite_master where name = 'extra'") == 1
        assert pending_names(index.conn) == []
    with Index(index_path) as index:
        assert calls == [1] and "db" not in index.__dict__


def test_migrations_registry_works_like_sqlite_utils(tmp_path):
    import sqlite_utils

    from doctagger.migrations import migrations, pending_names

    real = migrations.sqlite_utils_migrations()
    assert isinstance(real, sqlite_utils.Migrations)
    assert [m.name for m in real._migrations] == migrations.names
    assert migrations.names[:3] == ["m001_documents_and_chunks", "m002_tasks_labels_models",
                                    "m003_prediction_scores"]
    db = sqlite_utils.Database(tmp_path / "x.db")
    assert pending_names(db.conn) == migrations.names
    migrations.apply(db)
    assert pending_names(db.conn) == [] and migrations.pending(db) == []
    with pytest.raises(ValueError, match="already registered"):
        migrations(name="m001_documents_and_chunks")(lambda db: None)


def test_write_nests_as_savepoints_and_rolls_back(index):
    with index.write():
        index.conn.execute("insert into tasks (name, type, labels, created_at) "
                           "values ('outer', 'x', '[]', 'now')")
        with pytest.raises(RuntimeError):
            with index.write():
                index.conn.execute("insert into tasks (name, type, labels, created_at) "
                                   "values ('inner', 'x', '[]', 'now')")
                raise RuntimeError("undo the inner one")
        with index.write():
            index.conn.execute("insert into tasks (name, type, labels, created_at) "
                               "values ('kept', 'x', '[]', 'now')")
    names = [r["name"] for r in index.query("select name from tasks order by id")]
    assert names == ["outer", "kept"]
    with pytest.raises(RuntimeError):
        with index.write():
            index.conn.execute("delete from tasks")
            raise RuntimeError("undo it all")
    assert index.scalar("select count(*) from tasks") == 2
    assert not index.conn.in_transaction


def test_query_names_repeated_columns_as_sqlite_utils_does(index):
    row = index.one("select 1 as id, 2 as id, 3 as id_2")
    assert row == {"id": 1, "id_3": 2, "id_2": 3}
    assert row == next(index.db.query("select 1 as id, 2 as id, 3 as id_2"))
    assert index.query("select 1 where 0") == []


def test_every_builtin_command_is_listed_and_found():
    from doctagger.cli import BUILTIN_COMMANDS, LazyCommands, cli

    assert isinstance(cli.commands, LazyCommands)
    assert set(BUILTIN_COMMANDS) <= set(cli.commands)
    for name in BUILTIN_COMMANDS:
        assert cli.commands[name].name == name


def test_lazy_commands_import_one_module_per_lookup():
    import click

    from doctagger.cli import LazyCommands

    commands = LazyCommands({"tasks": "tasks", "import": "labels_io", "export": "labels_io"})
    assert "tasks" in commands and "export" in commands and "nope" not in commands
    assert commands.loaded_names() == set()
    assert commands.get("import").name == "import"
    assert commands.loaded_names() == {"import", "export"}
    plugin = click.Command("tasks")
    commands["tasks"] = plugin  # a plugin's command wins over the built-in
    assert commands.get("tasks") is plugin
    del commands["tasks"]
    assert commands.get("tasks") is not plugin and commands["tasks"].name == "tasks"
    assert sorted(commands) == ["export", "import", "tasks"]


def test_entry_points_are_read_as_importlib_metadata_reads_them():
    from importlib import metadata

    from doctagger import entrypoints

    groups = {ep.group for dist in metadata.distributions() for ep in dist.entry_points}
    assert "doctagger" in groups
    for group in groups:
        expected = sorted((ep.name, ep.value, ep.dist.name, ep.dist.version)
                          for ep in metadata.entry_points(group=group))
        got = sorted((ep.name, ep.value, ep.dist.name, ep.dist.version)
                     for ep in entrypoints.scan(group))
        assert got == expected, group
    keywords = [ep for ep in entrypoints.scan("doctagger") if ep.name == "keywords"]
    assert keywords and keywords[0].load() is metadata.entry_points(
        group="doctagger")["keywords"].load()
