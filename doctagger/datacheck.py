"""The data check before training, and the learning check after it: the beginner's guide's
pitfalls, caught for the user.

Warnings (training goes on, the user is told what to do):
- a label with fewer than :data:`MIN_EXAMPLES` (10) examples: too few to learn or to measure;
- a label with no example at all (only with ``--allow-few-examples``): never predicted;
- imbalance over :data:`MAX_IMBALANCE` (10:1) between the most and least frequent labels;
- duplicate texts (the split keeps them on one side, but they weigh double);
- the same text labelled differently (the model learns noise; fix the labels).

Refusals (:class:`~doctagger.errors.TrainingError`, with what to do):
- no labelled example at all;
- fewer than two classes with examples, for single-label classification (no labelled entity,
  for NER);
- a label of the task with fewer than :data:`MIN_TO_TRAIN` (2) examples, none included
  (a label added with ``tasks add-labels`` and not labelled yet): nothing to learn it from
  *and* test it on. This one alone can be overridden (``require_trainable(report,
  allow_few=True)``, ``train --allow-few-examples``) for a smoke test; a label with no
  example is then never predicted (the head gives it a bias of -1e4, fine-tuning never
  sees it as a target), and a warning names it.

After training, :func:`check_learning` reads the held-out metrics: a classifier that
recognises at most one label (it predicts the majority class), or an NER model that finds
no entity, "learned nothing" (a warning, and ``train`` keeps a better active model).
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
#: below this many examples (entities, for NER) of a label, training is refused: one to
#: learn from and one to hold out is the least that can be trained *and* measured
MIN_TO_TRAIN = 2
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
    #: the problem about labels below MIN_TO_TRAIN, the one ``allow_few`` overrides
    too_few: str | None = None

    def as_dict(self) -> dict:
        return {"examples": self.n_examples, "label_counts": self.label_counts,
                "warnings": self.warnings, "problems": self.problems,
                "duplicates": self.duplicates, "conflicts": self.conflicts}


def kind_of(task: Task, examples: Sequence[Example]) -> str:
    """"class", "classes" (multi-label) or "spans", from the task and its values (a list,
    even an empty one, is spans unless the task is multi-label: single-label values are
    strings)."""
    for ex in examples:
        value = ex.value
        if isinstance(value, list) and value and isinstance(value[0], dict):
            return "spans"
        if isinstance(value, list) and not task.multi_label:
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
    kind = kind_of(task, examples)
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
    present = [label for label, n in label_counts.items() if n]
    if kind == "class" and len(present) < 2:
        report.problems.append(
            f"task '{name}' has examples of only one class ({', '.join(present) or 'none'}): "
            "a classifier needs at least two; label examples of the other classes")
    if kind == "spans" and not present:
        report.problems.append(
            f"task '{name}' has no labelled entity yet: mark some spans with 'doctagger "
            f"label {name}' or import a CoNLL/JSONL file")
    scarce = [(label, n) for label, n in label_counts.items()
              if n < MIN_TO_TRAIN and (n or label in task.labels)]
    if scarce:
        listed = ", ".join(f"'{label}' ({n})" for label, n in scarce)
        needs = {label: MIN_TO_TRAIN - n for label, n in scarce}
        first = next(iter(needs))
        if len(needs) == 1:
            each = f"at least {needs[first]} more '{first}'"
        elif len(set(needs.values())) == 1:
            each = f"at least {needs[first]} more of each ({sum(needs.values())} more in all)"
        else:
            each = "at least " + ", ".join(f"{k} more '{label}'" for label, k in needs.items())
        report.too_few = (
            f"too few {unit} to train on: {listed}; each label needs at least "
            f"{MIN_TO_TRAIN}, one to learn from and one to test the model on. Label {each} "
            f"with 'doctagger label {name}' or 'doctagger import {name} FILE' (the guide "
            "advises 100+ per label), or pass --allow-few-examples for a smoke test whose "
            "quality cannot be measured" + (" (a label with no example is never predicted)"
                                             if missing else ""))
        report.problems.append(report.too_few)
    if missing:  # shown only when --allow-few-examples lets training go on
        which = ", ".join(f"'{label}'" for label in missing)
        report.warnings.append(
            f"no {unit} for {which}: the model can never predict a label it has not seen; "
            f"label at least {MIN_TO_TRAIN} with 'doctagger label {name}' and train again")
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


def require_trainable(report: DataReport, *, allow_few: bool = False) -> None:
    """Raise a TrainingError with the first problem, if there is one; ``allow_few`` lets
    labels below :data:`MIN_TO_TRAIN` through (the other problems still stop training)."""
    problems = [p for p in report.problems if not (allow_few and p == report.too_few)]
    if problems:
        raise TrainingError(problems[0])


# -- after training -----------------------------------------------------------------------
def _names(labels: Sequence[str]) -> str:
    quoted = [f"'{label}'" for label in labels]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _predicted_classes(metrics: dict) -> list[str] | None:
    """The labels a single-label model predicted at least once on the held-out set (from
    the confusion matrix: rows gold, columns predicted), or None when that is not known."""
    matrix, labels = metrics.get("confusion_matrix"), metrics.get("labels")
    if metrics.get("multi_label") or not matrix or not labels:
        return None
    try:
        return [label for j, label in enumerate(labels) if sum(row[j] for row in matrix)]
    except (IndexError, TypeError):
        return None


def check_learning(task: Task, metrics: dict | None, kind: str) -> tuple[list[str], bool]:
    """Warnings about what the held-out metrics say the model did *not* learn, and whether
    it learned nothing at all: ``(warnings, learned_nothing)``. ``kind`` is "class",
    "classes" (multi-label) or "spans" (:func:`kind_of`).

    - single-label: it recognises (recall > 0) at most one of the labels the held-out set
      holds, e.g. it predicts the majority class for everything: learned nothing;
    - multi-label: it recognises none of them: learned nothing;
    - spans: entity F1 is 0 although the held-out set has entities: learned nothing;
    - otherwise a label (entity type) it never recognises on the held-out set is a
      warning only. Metrics without per-label scores give no finding."""
    metrics = metrics or {}
    name = task.name
    what_to_do = (f"label more examples of them with 'doctagger label {name} --strategy "
                  "uncertain', or train longer (a higher --epochs)")
    per_key = "per_type" if kind == "spans" else "per_label"
    per = {label: row for label, row in (metrics.get(per_key) or {}).items()
           if isinstance(row, dict) and row.get("support")}
    if not per:  # nothing to judge by (or no gold example of any label held out)
        return [], False
    recognised = [label for label, row in per.items() if row.get("recall")]
    missed = [label for label in per if label not in recognised]
    if kind == "spans":
        if not recognised:
            total = sum(int(row["support"]) for row in per.values())
            return [f"the model found none of the {total} entities of the held-out set "
                    f"(entity F1 0.000): it has not learned to recognise {_names(list(per))} "
                    f"yet; train longer (leave --epochs out for the automatic schedule, or "
                    f"give more) or label more entities with 'doctagger label {name}'"], True
        if missed:
            return [f"the model finds no {_names(missed)} entity of the held-out set "
                    f"(recall 0): {what_to_do}"], False
        return [], False
    if not recognised or (kind == "class" and len(recognised) == 1 and len(per) >= 2):
        predicted = _predicted_classes(metrics)
        if predicted is not None and len(predicted) == 1:
            head = f"the model predicts only '{predicted[0]}' on the held-out set"
        elif recognised:
            head = f"the model recognises only '{recognised[0]}' on the held-out set"
        else:
            head = "the model recognises none of the labels on the held-out set"
        return [f"{head}: it has not learned {_names(missed)} (recall 0); {what_to_do}"], True
    if missed:
        return [f"the model never recognises {_names(missed)} on the held-out set "
                f"(recall 0): {what_to_do}"], False
    return [], False
