"""The example third-party plugin (plugins/doctagger_keywords): installed as its own
distribution, found through its entry point, listed by `doctagger plugins`, limited by the
allow-list, and its own test suite passes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from doctagger import plugins

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "plugins" / "doctagger_keywords"

try:
    import doctagger_keywords  # noqa: F401
except ImportError:  # pragma: no cover - depends on the environment
    pytestmark = pytest.mark.skip(
        reason="doctagger_keywords is not installed: pip install -e plugins/doctagger_keywords")


def test_it_is_its_own_distribution_with_an_entry_point():
    eps = [ep for ep in metadata.entry_points(group="doctagger") if ep.name == "keywords"]
    assert len(eps) == 1
    assert eps[0].value == "doctagger_keywords"
    assert eps[0].dist.name == "doctagger-keywords"
    assert "doctagger" in " ".join(metadata.requires("doctagger-keywords") or [])
    # the main distribution does not swallow it
    assert not any(ep.name == "keywords" for ep in metadata.distribution("doctagger")
                   .entry_points)


def test_doctagger_plugins_lists_it(invoke):
    result = invoke("plugins", "--json")
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["keywords"] == {
        "name": "keywords", "distribution": "doctagger-keywords",
        "version": metadata.version("doctagger-keywords"), "essential": False,
        "hooks": ["register_commands", "register_task_types"], "task_types": ["keywords"],
        "extractors": [], "error": None, "loaded": True, "warnings": []}
    assert invoke("plugins", "--check").exit_code == 0  # the installed plugins are healthy
    plain = invoke("plugins")
    assert "keywords (doctagger-keywords" in plain.output
    assert "task types: keywords" in plain.output


def test_the_allow_list_leaves_it_out(invoke, monkeypatch, tmp_path):
    monkeypatch.setenv("DOCTAGGER_LOAD_PLUGINS", "classification")
    plugins.reset()
    assert "keywords" not in plugins.task_types()
    created = invoke("tasks", "create", "mail", "--type", "keywords", "--labels", "a,b")
    assert created.exit_code == 1 and "no task type 'keywords'" in created.output
    # its command too (in a fresh process: Click keeps commands added earlier in this one)
    env = dict(os.environ, DOCTAGGER_LOAD_PLUGINS="classification",
               DOCTAGGER_INDEX=str(tmp_path / "index"))
    result = subprocess.run([sys.executable, "-m", "doctagger", "keywords", "list"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "No such command 'keywords'" in result.stderr


def test_its_hooks_are_all_known():
    plugins.get_plugin_manager().check_pending()
    assert [f for f in plugins.failures() if f.name == "keywords"] == []


def test_its_own_test_suite_passes(tmp_path):
    """What a plugin author runs: pytest in the plugin's folder, with doctagger.testing."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "DOCTAGGER_"))}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "--basetemp", str(tmp_path / "t")],
        cwd=PLUGIN, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout
