"""tasks create/list/show/delete, with the fake task types fakeclass and fakener."""
from __future__ import annotations

import json

import pytest

from tests.fakes import FakeClassNERPlugin, add_text_document


@pytest.fixture
def fakes(monkeypatch, register_plugin):
    """Only fakeclass and fakener (not conftest's kwclass/capsner): no installed plugin
    loads."""
    from doctagger import plugins

    monkeypatch.setenv("DOCTAGGER_LOAD_PLUGINS", "")
    plugins.reset()
    register_plugin(FakeClassNERPlugin(), "fakes")


def test_create_list_show(fakes, invoke):
    r = invoke("tasks", "create", "topic", "--type", "fakeclass", "--labels", "legal, medical",
               "--labels", "financial", "--description", "What it is about")
    assert r.exit_code == 0, r.output
    assert "Created task 'topic' (fakeclass, chunk-level) with labels: legal, medical, " \
           "financial" in r.output
    r = invoke("tasks", "create", "ents", "--type", "fakener", "--labels", "PER,ORG")
    assert r.exit_code == 0, r.output

    r = invoke("tasks")  # defaults to list
    assert r.exit_code == 0, r.output
    assert "topic" in r.output and "ents" in r.output and "fakener" in r.output
    r = invoke("tasks", "list", "--json")
    rows = json.loads(r.output)
    assert [t["name"] for t in rows] == ["ents", "topic"]
    assert rows[1] == {"name": "topic", "type": "fakeclass", "level": "chunk",
                       "multi_label": False, "labels": ["legal", "medical", "financial"],
                       "description": "What it is about", "labelled": 0, "models": 0,
                       "active_model": None, "created_at": rows[1]["created_at"]}

    r = invoke("tasks", "show", "topic")
    assert r.exit_code == 0, r.output
    assert "type:" in r.output and "fakeclass" in r.output and "active model:  none" in r.output


def test_create_json_and_options(fakes, invoke):
    r = invoke("tasks", "create", "kind", "--type", "fakeclass", "--labels", "a,b,c",
               "--multi-label", "--level", "document", "--json")
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    assert info["multi_label"] is True and info["level"] == "document"
    assert info["label_counts"] == {"a": 0, "b": 0, "c": 0}


@pytest.mark.parametrize("args, message", [
    (["x", "--type", "nope", "--labels", "a"],
     "no task type 'nope' (known: fakeclass, fakener)"),
    (["x", "--type", "fakeclass", "--labels", "a,a"], "the label 'a' is given twice"),
    (["x", "--type", "fakeclass", "--labels", " , "], "give at least one label"),
    (["x", "--type", "fakeclass", "--labels", "a,forbidden"], "the label 'forbidden' is reserved"),
    (["bad name", "--type", "fakeclass", "--labels", "a"], "bad task name 'bad name'"),
    (["x/y", "--type", "fakeclass", "--labels", "a"], "bad task name 'x/y'"),
    (["x", "--type", "fakener", "--labels", "PER", "--level", "document"],
     "task type 'fakener' labels chunks, not documents"),
    (["x", "--type", "fakener", "--labels", "PER", "--multi-label"], "cannot be multi-label"),
])
def test_create_errors(fakes, invoke, args, message):
    r = invoke("tasks", "create", *args)
    assert r.exit_code == 1
    assert message in r.output
    assert json.loads(invoke("tasks", "list", "--json").output) == []


def test_create_duplicate_and_usage_errors(fakes, invoke):
    assert invoke("tasks", "create", "t", "--type", "fakeclass", "--labels", "a").exit_code == 0
    r = invoke("tasks", "create", "t", "--type", "fakeclass", "--labels", "a")
    assert r.exit_code == 1 and "a task named 't' already exists" in r.output
    r = invoke("tasks", "create", "u", "--labels", "a")
    assert r.exit_code == 2 and "Missing option '--type'" in r.output
    r = invoke("tasks", "create", "u", "--type", "fakeclass", "--labels", "a", "--level", "page")
    assert r.exit_code == 2


def test_no_tasks_and_unknown_task(fakes, invoke):
    r = invoke("tasks")
    assert r.exit_code == 0 and "No tasks" in r.output
    r = invoke("tasks", "show", "missing")
    assert r.exit_code == 1 and "no task 'missing' in the index" in r.output
    r = invoke("tasks", "delete", "missing", "--yes")
    assert r.exit_code == 1 and "no task 'missing' in the index" in r.output


def test_show_counts_labels_per_class(fakes, invoke, index):
    from doctagger.labels import save_label

    invoke("tasks", "create", "topic", "--type", "fakeclass", "--labels", "a,b,c")
    invoke("tasks", "create", "ents", "--type", "fakener", "--labels", "PER,ORG")
    _, chunks = add_text_document(index, "/d/one.pdf", ["Alice met Bob", "at Acme", "x"])
    topic, ents = index.task("topic"), index.task("ents")
    save_label(index, topic, "a", chunk_id=chunks[0])
    save_label(index, topic, "a", chunk_id=chunks[1])
    save_label(index, topic, "b", chunk_id=chunks[2], source="import")
    save_label(index, ents, [{"start": 0, "end": 5, "label": "PER"},
                             {"start": 10, "end": 13, "label": "PER"}], chunk_id=chunks[0])
    save_label(index, ents, [{"start": 3, "end": 7, "label": "ORG"}], chunk_id=chunks[1])

    info = json.loads(invoke("tasks", "show", "topic", "--json").output)
    assert info["label_counts"] == {"a": 2, "b": 1, "c": 0}
    assert info["labelled_chunks"] == 3 and info["sources"] == {"human": 2, "import": 1}
    info = json.loads(invoke("tasks", "show", "ents", "--json").output)
    assert info["label_counts"] == {"PER": 2, "ORG": 1}
    r = invoke("tasks", "show", "topic")
    assert "No examples yet for: c." in r.output
    lines = r.output.splitlines()
    assert "  a  2" in lines and "  b  1" in lines and "  c  0" in lines
    r = invoke("tasks", "list")
    assert "topic" in r.output and " 3 " in r.output


def _add_model_rows(index, task, chunk_id, document_id):
    from doctagger.index import now

    folder = index.models_dir / task.name / "v1"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    with index.write() as db:
        model_id = db["models"].insert({"task_id": task.id, "version": 1,
                                        "path": f"models/{task.name}/v1",
                                        "created_at": now()}).last_pk
        db["predictions"].insert({"task_id": task.id, "model_id": model_id,
                                  "chunk_id": chunk_id, "value": '"a"', "score": 0.9,
                                  "created_at": now()})
        db["document_tags"].insert({"task_id": task.id, "model_id": model_id,
                                    "document_id": document_id, "label": "a", "score": 0.9,
                                    "created_at": now()})
        db.execute("update tasks set active_model_id = ? where id = ?", [model_id, task.id])
    return folder


def test_delete_asks_then_deletes_everything_of_the_task(fakes, invoke, index):
    from doctagger.labels import save_label

    invoke("tasks", "create", "topic", "--type", "fakeclass", "--labels", "a,b")
    invoke("tasks", "create", "other", "--type", "fakeclass", "--labels", "a,b")
    doc, chunks = add_text_document(index, "/d/one.pdf", ["one", "two"])
    topic, other = index.task("topic"), index.task("other")
    save_label(index, topic, "a", chunk_id=chunks[0])
    save_label(index, other, "b", chunk_id=chunks[0])
    folder = _add_model_rows(index, topic, chunks[0], doc)
    info = json.loads(invoke("tasks", "show", "topic", "--json").output)
    assert info["active_model"] == 1 and info["predictions"] == 1

    r = invoke("tasks", "delete", "topic", input="n\n")
    assert r.exit_code == 1 and "Aborted" in r.output
    assert "Delete task 'topic' with 1 labels, 1 models, 1 predictions and 1 document tags?" \
        in r.output
    assert index.scalar("select count(*) from labels") == 2 and folder.is_dir()

    r = invoke("tasks", "delete", "topic", input="y\n")
    assert r.exit_code == 0, r.output
    assert "Deleted task 'topic': 1 labels, 1 models, 1 predictions, 1 document tags." in r.output
    assert not (index.models_dir / "topic").exists()
    for table in ("labels", "models", "predictions", "document_tags"):
        assert index.scalar(f"select count(*) from {table} where task_id = ?", [topic.id]) == 0
    assert index.scalar("select count(*) from labels") == 1  # the other task's label stays
    assert index.scalar("select count(*) from chunks") == 2  # documents and chunks stay
    assert [t["name"] for t in json.loads(invoke("tasks", "--json").output)] == ["other"]


def test_delete_yes_json(fakes, invoke):
    invoke("tasks", "create", "topic", "--type", "fakeclass", "--labels", "a,b")
    r = invoke("tasks", "delete", "topic", "--yes", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == {"task": "topic", "deleted": {
        "labels": 0, "models": 0, "predictions": 0, "document_tags": 0, "folders": []}}
    assert json.loads(invoke("tasks", "list", "--json").output) == []


def test_every_tasks_command_has_help(fakes, invoke):
    from doctagger.cli.tasks import tasks

    for name, command in tasks.commands.items():
        assert command.help and "\b" in command.help, name
        for param in command.params:
            if param.param_type_name == "option":
                assert param.help, f"{name} {param.name}"
        assert invoke("tasks", name, "--help").exit_code == 0


def test_add_labels(fakes, invoke, index):
    invoke("tasks", "create", "topic", "--type", "fakeclass", "--labels", "legal,medical")
    r = invoke("tasks", "add-labels", "topic", "financial,tax", "other")
    assert r.exit_code == 0, r.output
    assert "Added financial, tax, other to task 'topic': its labels are now legal, medical, " \
           "financial, tax, other." in r.output
    assert "active model" not in r.output  # none yet
    assert index.task("topic").labels == ["legal", "medical", "financial", "tax", "other"]

    r = invoke("tasks", "add-labels", "topic", "medical,new")
    assert r.exit_code == 1 and "task 'topic' already has the label medical" in r.output
    assert "new" not in index.task("topic").labels  # all or nothing
    r = invoke("tasks", "add-labels", "nope", "x")
    assert r.exit_code == 1 and "no task 'nope' in the index" in r.output
    r = invoke("tasks", "add-labels", "topic", " , ")
    assert r.exit_code == 1 and "give at least one label" in r.output
    r = invoke("tasks", "add-labels", "topic", "forbidden", "--json")
    assert r.exit_code == 1 and "forbidden" in r.output  # the task type checks the new set
    assert "forbidden" not in index.task("topic").labels
    r = invoke("tasks", "add-labels", "topic", "z", "--json")
    assert r.exit_code == 0 and json.loads(r.output)["labels"][-1] == "z"


@pytest.mark.parametrize("args", [(",,",), (" , ", ",")])
def test_add_labels_without_a_name_says_how_to_give_them(fakes, invoke, args):
    """add-labels has no --labels option: its message shows its own usage."""
    invoke("tasks", "create", "topic", "--type", "fakeclass", "--labels", "legal,medical")
    r = invoke("tasks", "add-labels", "topic", *args)
    assert r.exit_code == 1
    assert r.output == ("Error: give at least one label name: doctagger tasks add-labels "
                        "topic A,B\n")
    r = invoke("tasks", "create", "other", "--type", "fakeclass", "--labels", ",,")
    assert r.exit_code == 1
    assert r.output == "Error: give at least one label with --labels A,B,C\n"


def test_concurrent_add_labels_lose_no_label(fakes, invoke, index_path):
    """Another add-labels commits between this one's start and its write: the label set is
    read again under the write lock, so both labels stay."""
    from doctagger.index import Index
    from doctagger.tasks import add_labels

    invoke("tasks", "create", "topic", "--type", "fakeclass", "--labels", "x,y")
    with Index(index_path) as a, Index(index_path) as b:
        write = a.write

        def other_writer_first(*args, **kwargs):
            add_labels(b, "topic", "from_b")
            return write(*args, **kwargs)

        a.write = other_writer_first
        task, added = add_labels(a, "topic", "from_a")
    assert added == ["from_a"]
    assert task.labels == ["x", "y", "from_b", "from_a"]
    with Index(index_path) as check:
        assert check.task("topic").labels == ["x", "y", "from_b", "from_a"]


def test_add_labels_says_the_active_model_does_not_know_them(fakes, invoke, index):
    from tests.fakes import add_model

    invoke("tasks", "create", "topic", "--type", "fakeclass", "--labels", "legal,medical")
    add_model(index, "topic", 1)
    r = invoke("tasks", "add-labels", "topic", "tax")
    assert r.exit_code == 0, r.output
    assert "Its active model does not know the new label: label some items with it " \
           "('doctagger label topic' or 'doctagger import'), then 'doctagger train topic'." \
        in r.output


def test_add_labels_to_a_rule_based_type_says_no_training(fakes, invoke, monkeypatch):
    from tests.fakes import FakeClassification

    monkeypatch.setattr(FakeClassification, "needs_training", False, raising=False)
    invoke("tasks", "create", "topic", "--type", "fakeclass", "--labels", "legal,medical")
    r = invoke("tasks", "add-labels", "topic", "tax,other")
    assert r.exit_code == 0, r.output
    assert "Task type 'fakeclass' needs no training: make it answer the new labels as its " \
           "documentation says" in r.output
    assert "doctagger train" not in r.output
