"""The data check before training: the beginner's guide's pitfalls, caught for the user.

Warnings (training goes on, the user is told what to do):
- a label with fewer than :data:`MIN_EXAMPLES` (10) examples: too few to learn or to measure;
- imbalance over :data:`MAX_IMBALANCE` (10:1) between the most and least frequent labels;
- duplicate texts (the split keeps them on one side, but they weigh double);
- the same text labelled differently (the model learns noise; fix the labels).

Refusals (:class:`~doctagger.errors.TrainingError`, with what to do):
- no labelled example at all;
- a label of the task with no example;
- fewer than two classes with examples, for single-label classification.
"""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Sequence

from doctagger.errors import TrainingError
from doctagger.index import text_hash
from doctagger.tasktypes import Example, Task, value_labels

MIN_EXAMPLES = 10
MAX_IMBALANCE = 10.0


@dataclass
class DataReport:
    """What the check found. ``problems`` stop training; ``warnings`` do not."""

    n_examples: int
    label_counts: dict[str, int]
    warnings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    duplicates: int = 0  # texts that occur more than once (extra copies)
    conflicts: int = 0  # texts with two or more different values

    def as_dict(self) -> dict:
        return {"examples": self.n_examples, "label_counts": self.label_counts,
                "warnings": self.warnings, "problems": self.problems,
                "duplicates": self.duplicates, "conflicts": self.conflicts}


def _kind(task: Task, examples: Sequence[Example]) -> str:
    """"class", "classes" (multi-label) or "spans", from the task and its values."""
    for ex in examples:
        value = ex.value
        if isinstance(value, list) and value and isinstance(value[0], dict):
            return "spans"
        if isinstance(value, str):
            return "classes" if task.multi_label else "class"
    return "classes" if task.multi_label else "class"


def _short(text: str, limit: int = 50) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_data(task: Task, examples: Sequence[Example]) -> DataReport:
    """Count the examples per label and collect warnings and problems (see the module
    docstring). Spans count once per entity; multi-label values once per label."""
    kind = _kind(task, examples)
    unit = "entities" if kind == "spans" else "examples"
    counts = Counter(label for ex in examples for label in value_labels(ex.value))
    label_counts = {label: counts.get(label, 0) for label in task.labels}
    for label in sorted(counts):
        if label not in label_counts:  # a value outside the task's labels (old labels)
            label_counts[label] = counts[label]
    report = DataReport(n_examples=len(examples), label_counts=label_counts)
    name = task.name
    if not examples:
        report.problems.append(
            f"task '{name}' has no labelled examples yet: label some with 'doctagger label "
            f"{name}' or 'doctagger import {name} FILE'")
        return report
    missing = [label for label in task.labels if not counts.get(label)]
    if missing:
        which = ", ".join(f"'{label}'" for label in missing)
        report.problems.append(
            f"label{'s' if len(missing) > 1 else ''} {which} of task '{name}' "
            f"{'have' if len(missing) > 1 else 'has'} no example: label at least "
            f"{MIN_EXAMPLES} with 'doctagger label {name}' (or import them), or recreate the "
            "task without it")
    present = [label for label, n in label_counts.items() if n]
    if kind == "class" and len(present) < 2 and not missing:
        report.problems.append(
            f"task '{name}' has examples of only one class ({', '.join(present) or 'none'}): "
            "a classifier needs at least two; label examples of the other classes")
    if kind == "spans" and not present:
        report.problems.append(
            f"task '{name}' has no labelled entity yet: mark some spans with 'doctagger "
            f"label {name}' or import a CoNLL/JSONL file")
    few = [(label, n) for label, n in label_counts.items() if 0 < n < MIN_EXAMPLES]
    if few:
        listed = ", ".join(f"'{label}' ({n})" for label, n in few)
        report.warnings.append(
            f"few {unit} for {listed}: fewer than {MIN_EXAMPLES} is too few to learn or to "
            f"measure; the guide advises 100+ per label. Label more with 'doctagger label "
            f"{name} --strategy uncertain'")
    if len(present) >= 2:
        (big, n_big), (small, n_small) = (max(label_counts.items(), key=lambda kv: kv[1]),
                                          min(((k, v) for k, v in label_counts.items() if v),
                                              key=lambda kv: kv[1]))
        if n_big > MAX_IMBALANCE * n_small:
            report.warnings.append(
                f"labels are imbalanced {n_big}:{n_small} ('{big}' vs '{small}'): the loss is "
                f"weighted to compensate, but labelling more '{small}' helps most")
    by_text: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        by_text[text_hash(ex.text or "")].append(ex)
    repeated = {h: exs for h, exs in by_text.items() if len(exs) > 1}
    conflicting = {h: exs for h, exs in repeated.items()
                   if len({json.dumps(e.value, sort_keys=True) for e in exs}) > 1}
    report.duplicates = sum(len(exs) - 1 for h, exs in repeated.items() if h not in conflicting)
    report.conflicts = len(conflicting)
    if report.duplicates:
        sample = next(exs for h, exs in repeated.items() if h not in conflicting)[0]
        report.warnings.append(
            f"{report.duplicates} duplicate text{'s' if report.duplicates > 1 else ''} "
            f"(e.g. \"{_short(sample.text)}\"): they are kept on one side of the split but "
            "count several times in training; remove repeated boilerplate if it is noise")
    if conflicting:
        exs = next(iter(conflicting.values()))
        values = sorted({", ".join(value_labels(e.value)) or "none" for e in exs})
        report.warnings.append(
            f"{len(conflicting)} text{'s are' if len(conflicting) > 1 else ' is'} labelled "
            f"differently in different places (e.g. \"{_short(exs[0].text)}\" as "
            f"{' and '.join(repr(v) for v in values)}): the model learns noise; fix them with "
            f"'doctagger label {name}' or in the import file")
    return report


def require_trainable(report: DataReport) -> None:
    """Raise a TrainingError with the first problem, if there is one."""
    if report.problems:
        raise TrainingError(report.problems[0])
