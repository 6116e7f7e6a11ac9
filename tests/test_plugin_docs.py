"""docs/plugins.md cannot drift: every hook and every part of the task-type contract appears
there with the signature the code has, and its example plugins really work."""
from __future__ import annotations

import ast
import importlib
import inspect
import re
import sys
import textwrap
from pathlib import Path

import pytest

from doctagger import hookspecs, plugins, tasktypes
from doctagger.testing import check_task_type
from doctagger.testing import doctagger_cli, doctagger_index, doctagger_plugin  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "plugins.md"
TEXT = DOC.read_text(encoding="utf-8")
BLOCKS = re.findall(r"```python\n(.*?)```", TEXT, re.S)


def _signature(node: ast.FunctionDef) -> str:
    returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
    return f"def {node.name}({ast.unparse(node.args)}){returns}"


def _doc_nodes():
    """Every class and function defined in the page's Python blocks (hook signature lines
    like ``def register_commands(cli)`` get a body so they parse)."""
    classes: dict[str, ast.ClassDef] = {}
    functions: dict[str, list[str]] = {}
    for block in BLOCKS:
        source = re.sub(r"^(def .*\))$", r"\1: ...", block, flags=re.M)
        tree = ast.parse(source)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                classes.setdefault(node.name, node)
            elif isinstance(node, ast.FunctionDef):
                functions.setdefault(node.name, []).append(_signature(node))
    return classes, functions


def _class(module, name) -> ast.ClassDef:
    tree = ast.parse(inspect.getsource(module))
    return next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name)


def _hookspecs():
    return [name for name, fn in vars(hookspecs).items()
            if callable(fn) and hasattr(fn, "doctagger_spec")]


def test_every_python_block_parses():
    assert len(BLOCKS) >= 8
    _doc_nodes()


@pytest.mark.parametrize("name", _hookspecs())
def test_every_hook_is_documented_with_its_signature(name):
    spec = getattr(hookspecs, name)
    line = f"def {name}{inspect.signature(spec)}"
    assert re.search(rf"^{re.escape(line)}$", TEXT, re.M), (
        f"docs/plugins.md lacks the hook signature `{line}` on a line of its own")
    assert f"### {name}" in TEXT, f"docs/plugins.md has no section for the hook {name}"
    examples = [b for b in BLOCKS if re.match(r"# \w+\.py\n", b)
                and re.search(rf"@hookimpl\n\s*def {name}\(", b)]
    assert examples, f"docs/plugins.md has no runnable example implementing {name}"


def test_no_documented_hook_is_missing_from_the_code():
    documented = set(re.findall(r"^### (register_\w+)$", TEXT, re.M))
    assert documented == set(_hookspecs())


@pytest.mark.parametrize("class_name", ["TaskType", "Predictor"])
def test_task_type_interface_matches_the_code(class_name):
    classes, _ = _doc_nodes()
    assert class_name in classes, f"docs/plugins.md does not show class {class_name}"
    code = {_signature(n) for n in _class(tasktypes, class_name).body
            if isinstance(n, ast.FunctionDef)}
    docs = {_signature(n) for n in classes[class_name].body if isinstance(n, ast.FunctionDef)}
    assert docs == code, (f"{class_name} methods differ: only in the code {code - docs}, "
                          f"only in the docs {docs - code}")
    code_attrs = {ast.unparse(n) for n in _class(tasktypes, class_name).body
                  if isinstance(n, ast.AnnAssign)}
    doc_attrs = {ast.unparse(n) for n in classes[class_name].body if isinstance(n, ast.AnnAssign)}
    assert doc_attrs == code_attrs
    for method in (n.name for n in _class(tasktypes, class_name).body
                   if isinstance(n, ast.FunctionDef)):
        assert f"`{method}(self" in TEXT, f"docs/plugins.md does not explain {method}()"


@pytest.mark.parametrize("class_name", ["Task", "Example", "Prediction", "ChunkPrediction",
                                        "DocumentTag", "TrainOptions", "TrainResult"])
def test_dataclasses_match_the_code(class_name):
    classes, _ = _doc_nodes()
    assert class_name in classes, f"docs/plugins.md does not show the dataclass {class_name}"
    code = [ast.unparse(n) for n in _class(tasktypes, class_name).body
            if isinstance(n, ast.AnnAssign)]
    docs = [ast.unparse(n) for n in classes[class_name].body if isinstance(n, ast.AnnAssign)]
    assert docs == code


def test_discovery_is_documented():
    for needle in ("[project.entry-points.doctagger]", plugins.ENV_ALLOW, "doctagger plugins",
                   "--json", "DOCTAGGER_RAISE_ERRORS", "check_pending", "pytest_plugins",
                   "check_task_type", "tiny_bert", "plugin-tutorial.md"):
        assert needle in TEXT, needle


# -- the examples on the page run -----------------------------------------------------------------
def _example(name: str, tmp_path: Path, monkeypatch):
    """Import the block that starts with ``# NAME.py`` as a real module."""
    block = next((b for b in BLOCKS if b.startswith(f"# {name}.py\n")), None)
    assert block is not None, f"docs/plugins.md has no example {name}.py"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(block), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(name, None)
    return importlib.import_module(name)


def test_task_type_example_conforms(tmp_path, monkeypatch, doctagger_plugin, doctagger_cli):
    module = _example("doctagger_majority", tmp_path, monkeypatch)
    doctagger_plugin(module, "majority")
    check_task_type("majority", labels=["a", "b"], tmp_path=tmp_path).assert_ok()
    multi = doctagger_cli("tasks", "create", "t", "--type", "majority", "--labels", "a,b",
                          "--multi-label")
    assert multi.exit_code == 1 and "single-label; leave out --multi-label" in multi.output


def test_command_example_runs(tmp_path, monkeypatch, doctagger_plugin, doctagger_cli):
    module = _example("doctagger_longest", tmp_path, monkeypatch)
    doctagger_plugin(module, "longest")
    result = doctagger_cli("longest", "--limit", "3")
    assert result.exit_code == 0, result.output
    assert doctagger_cli.json("longest", "--json") == []
    assert "Example:" in doctagger_cli("longest", "--help").output


def test_first_example_runs(tmp_path, monkeypatch, doctagger_plugin, doctagger_cli):
    module = _example("doctagger_hello", tmp_path, monkeypatch)
    doctagger_plugin(module, "hello")
    result = doctagger_cli("hello")
    assert result.exit_code == 0 and "Hello from a plugin" in result.output


def test_extractor_example_ingests_an_email(tmp_path, monkeypatch, doctagger_plugin,
                                            doctagger_cli):
    if doctagger_cli("ingest", "--help").exit_code != 0:
        pytest.skip("this doctagger has no 'ingest' command yet")
    module = _example("doctagger_eml", tmp_path, monkeypatch)
    doctagger_plugin(module, "eml")
    mail = tmp_path / "mail"
    mail.mkdir()
    (mail / "hello.eml").write_text(
        "From: Ada <ada@example.org>\nTo: bob@example.org\nSubject: Invoice 42\n"
        "Content-Type: text/plain; charset=utf-8\n\nPlease pay invoice 42 by Friday.\n")
    (mail / "empty.eml").write_text("From: x@example.org\nSubject: nothing\n\n\n")
    result = doctagger_cli("ingest", mail, "--workers", "1")
    assert result.exit_code == 0, result.output
    docs = {d["title"]: d for d in doctagger_cli.json("docs", "--json")}
    assert docs["Invoice 42"]["status"] == "ok"
    hits = doctagger_cli.json("search", "invoice", "--json")
    assert [h["title"] for h in hits] == ["Invoice 42"]
    failed = doctagger_cli.json("docs", "--failed", "--json")
    assert [d["status"] for d in failed] == ["empty"]


# -- the tutorial shows the example plugin as it is ---------------------------------------------------
TUTORIAL = (REPO / "docs" / "plugin-tutorial.md").read_text(encoding="utf-8")
KEYWORDS = REPO / "plugins" / "doctagger_keywords"


def _tutorial_blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", TUTORIAL, re.S)


def test_tutorial_code_is_the_example_plugins_code():
    checked = 0
    for block in _tutorial_blocks("python"):
        head, _, body = block.partition("\n")
        match = re.fullmatch(r"# (doctagger_keywords/\w+\.py)( \(excerpt\))?", head)
        if not match:
            continue
        source = (KEYWORDS / match.group(1)).read_text(encoding="utf-8")
        if match.group(2):
            for piece in re.split(r"^\.\.\.\n", body, flags=re.M):
                assert piece in source, f"not in {match.group(1)}:\n{piece}"
        else:
            assert body == source, f"{match.group(1)} differs from the tutorial"
        checked += 1
    assert checked >= 6
    assert (KEYWORDS / "pyproject.toml").read_text(encoding="utf-8") in _tutorial_blocks("toml")


def test_tutorial_conformance_test_runs(tmp_path):
    pytest.importorskip("doctagger_keywords")
    block = next(b for b in _tutorial_blocks("python")
                 if b.startswith("# ../doctagger-keywords/tests/test_conformance.py\n"))
    namespace: dict = {}
    exec(compile(block, "tutorial-test_conformance.py", "exec"), namespace)
    namespace["test_keywords_conforms"](tmp_path)


def test_tutorial_help_output_is_current(doctagger_cli):
    pytest.importorskip("doctagger_keywords")
    shown = TUTORIAL.split("doctagger keywords --help\n```\n```\n", 1)[1].split("```", 1)[0]
    result = doctagger_cli("keywords", "--help", terminal_width=78)  # a shell's 80 columns
    assert result.output == shown
