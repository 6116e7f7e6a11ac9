"""doctagger.registry: versions are folders + rows, registered atomically."""
from __future__ import annotations

import json

import pytest

from doctagger import registry
from doctagger.errors import InvalidInputError, NotFoundError
from doctagger.index import now


@pytest.fixture
def task(index):
    with index.write() as db:
        db["tasks"].insert({"name": "topic", "type": "classification",
                            "labels": json.dumps(["a", "b"]), "multi_label": 0,
                            "level": "chunk", "options": "{}", "created_at": now()})
    return index.task("topic")


def register(index, task, metrics=None, **kw):
    version, tmp = registry.new_version_dir(index, task)
    (tmp / "model.safetensors").write_bytes(b"weights")
    return registry.register_version(
        index, task, version, tmp, base_model="base", method="finetune",
        params={"epochs": 3}, data_fingerprint="sha256:x",
        metrics={"macro_f1": 0.8, "accuracy": 0.9} if metrics is None else metrics,
        info={"device": "cpu", "pipeline_tag": "text-classification"},
        split={"train": 8, "eval": 2, "seed": 42, "eval_fraction": 0.2}, **kw)


def test_new_version_dir_is_hidden_and_numbered(index, task):
    version, tmp = registry.new_version_dir(index, task)
    assert version == 1 and tmp.is_dir() and tmp.name.startswith(".tmp-v1-")
    assert tmp.parent == index.models_dir / "topic"
    registry.discard(tmp)
    assert not tmp.exists()


def test_register_version_writes_folder_row_and_activates(index, task):
    record = register(index, task)
    folder = index.models_dir / "topic" / "v1"
    assert record["version"] == 1 and record["active"] and record["path"] == str(folder.resolve())
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "doctagger.json",
                                                         "model.safetensors"]
    assert [p.name for p in (index.models_dir / "topic").iterdir()] == ["v1"]
    meta = json.loads((folder / "doctagger.json").read_text())
    assert meta["task"]["name"] == "topic" and meta["labels"] == ["a", "b"]
    assert meta["metrics"]["macro_f1"] == 0.8 and meta["parameters"] == {"epochs": 3}
    assert meta["split"]["train"] == 8 and "torch" in meta["libraries"]
    card = (folder / "README.md").read_text()
    assert "pipeline_tag: text-classification" in card and "| macro_f1 | 0.8 |" in card
    assert "library_name: transformers" in card  # a fine-tuned folder: transformers loads it
    assert 'pipeline("text-classification", model="PATH/TO/v1")' in card
    row = index.one("select * from models")
    assert row["path"] == "models/topic/v1" and row["version"] == 1
    assert index.scalar("select active_model_id from tasks") == row["id"]


def test_versions_activate_and_roll_back(index, task):
    register(index, task)
    register(index, task, metrics={"f1": 0.5})
    assert [(r["version"], r["active"]) for r in registry.list_versions(index, "topic")] == [
        (1, False), (2, True)]
    assert registry.get_version(index, task)["version"] == 2
    assert registry.activate(index, task, "v1")["version"] == 1
    assert registry.get_version(index, task)["version"] == 1
    assert registry.model_dir(index, task) == (index.models_dir / "topic" / "v1").resolve()
    assert registry.headline({"f1": 0.5, "accuracy": 1}) == ("f1", 0.5)
    assert registry.metadata_of(index, task, 2)["metrics"] == {"f1": 0.5}
    assert len(registry.list_versions(index)) == 2


def test_a_version_taken_meanwhile_gets_the_next_number(index, task):
    first, tmp1 = registry.new_version_dir(index, task)
    second, tmp2 = registry.new_version_dir(index, task)
    assert first == second == 1  # both runs planned v1
    for tmp in (tmp1, tmp2):
        registry.register_version(index, task, 1, tmp, base_model=None, method="m",
                                  params={}, data_fingerprint=None, metrics={}, info={})
    assert [r["version"] for r in registry.list_versions(index, task)] == [1, 2]


def test_a_failed_registration_leaves_nothing(index, task, monkeypatch):
    """Ctrl-C after the folder was renamed, while the row is written: no row, no folder."""
    import sqlite_utils.db

    version, tmp = registry.new_version_dir(index, task)
    renamed = []
    real_rename = registry.os.rename

    def rename(src, dst):
        real_rename(src, dst)
        renamed.append(dst)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(registry.os, "rename", rename)
    monkeypatch.setattr(sqlite_utils.db.Table, "insert", interrupted)
    with pytest.raises(KeyboardInterrupt):
        registry.register_version(index, task, version, tmp, base_model=None, method="m",
                                  params={}, data_fingerprint=None, metrics={}, info={})
    monkeypatch.undo()
    assert renamed and not renamed[0].exists()
    assert index.scalar("select count(*) from models") == 0
    assert index.scalar("select active_model_id from tasks") is None
    assert list((index.models_dir / "topic").iterdir()) == []


def test_errors_say_what_to_do(index, task):
    with pytest.raises(NotFoundError, match="no active model yet; train one with "
                                            "'doctagger train topic'"):
        registry.get_version(index, task)
    register(index, task)
    with pytest.raises(NotFoundError, match=r"has no model v5 \(versions: v1\)"):
        registry.get_version(index, task, 5)
    with pytest.raises(InvalidInputError, match="'latest' is not a model version"):
        registry.get_version(index, task, "latest")
    (index.models_dir / "topic" / "v1" / "model.safetensors").unlink()
    (index.models_dir / "topic" / "v1" / "doctagger.json").unlink()
    (index.models_dir / "topic" / "v1" / "README.md").unlink()
    (index.models_dir / "topic" / "v1").rmdir()
    with pytest.raises(NotFoundError, match="files of topic v1 are missing"):
        registry.model_dir(index, task)
    with pytest.raises(NotFoundError, match="files of topic v1 are missing"):
        registry.activate(index, task, 1)


def test_parse_version():
    assert registry.parse_version("v3") == 3 == registry.parse_version(3)
    assert registry.parse_version("V12") == 12
    for bad in ("0", "v", "3.1", "-1"):
        with pytest.raises(InvalidInputError):
            registry.parse_version(bad)


def test_a_head_card_does_not_claim_transformers_loads_it():
    card = registry.model_card({
        "task": {"name": "topic", "type": "classification", "level": "chunk",
                 "multi_label": False},
        "info": {"method": "head"}, "version": 2, "created_at": "2026-12-08",
        "labels": ["a", "b"], "method": "head",
        "metrics": {"macro_f1": 0.8, "macro_f1_interval": [0.7, 0.9]}})
    assert "library_name" not in card and "pipeline_tag" not in card
    assert "interval over the held-out examples: 0.7-0.9" in card
