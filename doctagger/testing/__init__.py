"""The plugin author's test kit: pytest fixtures, a tiny model, and a conformance check.

Use it from a plugin's tests (pytest must be installed; nothing here is imported by the CLI)::

    # tests/conftest.py, at the root of your tests
    pytest_plugins = ["doctagger.testing"]

    # tests/test_my_type.py
    from doctagger.testing import check_task_type

    def test_conformance(tmp_path):
        report = check_task_type(MyTaskType, labels=["a", "b"], tmp_path=tmp_path)
        report.assert_ok()

    def test_cli(doctagger_cli):
        doctagger_cli("tasks", "create", "t", "--type", "mytype", "--labels", "a,b")

Fixtures: ``doctagger_index`` (a fresh index in ``tmp_path``, with ``DOCTAGGER_INDEX``
pointing at it and the Hub switched off), ``doctagger_cli`` (runs ``doctagger ...`` in process
against that index) and ``doctagger_plugin`` (registers an in-process plugin for one test).

:func:`check_task_type` drives a task type through everything the core will do with it:
check_labels → validate (good and bad values) → train → save (the model folder is moved, as
the registry does) → load → predict → evaluate → roll-up → uncertainty → render, and reports
every step that broke, in plain words. :func:`tiny_bert` writes a randomly initialised
two-layer BERT (with a WordPiece vocabulary built from your texts) to use as ``base_model``
so transformer task types train in seconds with no network.
"""
from __future__ import annotations

from .conformance import check_task_type
from .examples import sample_examples
from .fixtures import CliInvoker, doctagger_cli, doctagger_index, doctagger_plugin
from .models import tiny_bert
from .report import ConformanceReport, Step
from .values import BAD_LABEL

__all__ = ["check_task_type", "ConformanceReport", "sample_examples", "tiny_bert",
           "CliInvoker", "doctagger_index", "doctagger_cli", "doctagger_plugin"]
