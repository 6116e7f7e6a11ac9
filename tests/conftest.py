"""Shared fixtures: every test gets its own index folder and a fresh plugin manager."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from doctagger import plugins

pytest_plugins = ["doctagger.testing"]  # the plugin authors' kit: doctagger_plugin, ...

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SAMPLES = REPO / "samples"


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Point the index at a temporary folder; reload plugins for each test."""
    monkeypatch.setenv("DOCTAGGER_INDEX", str(tmp_path / "index"))
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.delenv("DOCTAGGER_RAISE_ERRORS", raising=False)
    plugins.reset()
    yield
    plugins.reset()


@pytest.fixture
def index_path(tmp_path) -> Path:
    return tmp_path / "index"


@pytest.fixture
def index(index_path):
    from doctagger.index import Index

    idx = Index(index_path)
    yield idx
    idx.close()


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def invoke(runner):
    """invoke("ingest", path, ...) -> click Result; the command's exceptions propagate as
    exit codes exactly as for a user."""
    from doctagger.cli import cli

    def _invoke(*args, input=None, env=None):
        return runner.invoke(cli, [str(a) for a in args], input=input, env=env,
                             catch_exceptions=True)

    return _invoke


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not available: {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture
def register_plugin(doctagger_plugin):
    """register_plugin(obj, name): an in-process plugin for the length of one test (the
    testing kit's ``doctagger_plugin``, under the name these tests use)."""
    return doctagger_plugin


@pytest.fixture
def fakes(monkeypatch, register_plugin):
    """Only the fake task types of tests/fakes.py load; their call records start empty."""
    from tests.fakes import FakePlugin, KeywordClassification

    monkeypatch.setenv("DOCTAGGER_LOAD_PLUGINS", "")
    plugins.reset()
    KeywordClassification.calls = []
    KeywordClassification.loaded = []
    register_plugin(FakePlugin(), "tag-fakes")
