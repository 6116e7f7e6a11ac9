"""The ``keywords`` task type: tags from keyword rules, no training needed.

Where the rules come from, in order: ``rules.json`` in the model folder (written by
``doctagger keywords set`` for each new rules version, or by ``doctagger train``), else the
task's options (``{"rules": {label: rule}}``). Each label has at most one rule; a label
without one is never predicted.

Values are class names, as for the ``classification`` task type: a label (single-label) or
a sorted list of labels (multi-label). Prediction, per text:

- multi-label: every label whose rule matches; the score is the weakest matching rule's
  (1.0 unless a fuzzy rule matched), or 0.0 with the empty list when nothing matches;
- single-label: the best-scoring matching label (ties: the one listed first in the task);
  when no rule matches the value is ``None`` with score 0.0 — "no answer", stored so the
  chunk is not tagged again, never turned into a tag.

``uncertainty`` is the default ``1 - score``, so ``doctagger label TASK --strategy
uncertain`` asks first about the chunks no rule matches: where a new rule is needed.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Sequence

from doctagger.errors import InvalidInputError, InvalidLabelError
from doctagger.tasktypes import (ChunkPrediction, DocumentTag, Example, Prediction, Task,
                                 TaskType, TrainOptions, TrainResult)

from doctagger_keywords.rules import Rule, parse_rules
from doctagger_keywords.suggest import suggest_rules

RULES_FILE = "rules.json"
TOP_CHUNKS = 3


def rules_for(task: Task, model_dir: Path | None = None) -> dict[str, Rule]:
    """The rules a model version uses: its ``rules.json``, else the task's options."""
    if model_dir is not None and (Path(model_dir) / RULES_FILE).is_file():
        data = json.loads((Path(model_dir) / RULES_FILE).read_text(encoding="utf-8"))
        return parse_rules(data.get("rules", {}), task.labels)
    return parse_rules((task.options or {}).get("rules", {}), task.labels)


class KeywordsPredictor:
    """``predict(texts)`` with a fixed set of rules."""

    def __init__(self, labels: list[str], rules: dict[str, Rule], *, multi_label: bool):
        self.labels = list(labels)
        self.rules = {label: rules[label] for label in self.labels if label in rules}
        self.multi_label = multi_label

    def scores(self, text: str) -> dict[str, float]:
        out = {label: 0.0 for label in self.labels}
        for label, rule in self.rules.items():
            out[label] = float(rule.score(text))
        return out

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        out = []
        for text in texts:
            scores = self.scores(text)
            matched = [label for label in self.labels if scores[label] > 0]
            if self.multi_label:
                score = min((scores[m] for m in matched), default=0.0)
                out.append(Prediction(value=sorted(matched), score=score, scores=scores))
            elif matched:
                best = max(matched, key=lambda m: (scores[m], -self.labels.index(m)))
                out.append(Prediction(value=best, score=scores[best], scores=scores))
            else:
                out.append(Prediction(value=None, score=0.0, scores=scores))
        return out


def _as_set(value: Any) -> set[str]:
    if value is None:
        return set()
    if isinstance(value, str):
        return {value}
    return set(value)


class KeywordsTaskType(TaskType):
    name = "keywords"
    description = ("Rule-based tags, Paperless-ngx style (any, all, exact, regex, fuzzy): "
                   "no training needed")
    value_kind = "class"
    levels = ("chunk", "document")
    needs_training = False

    def check_labels(self, labels: list[str], *, multi_label: bool, level: str) -> None:
        super().check_labels(labels, multi_label=multi_label, level=level)
        seen = set()
        for label in labels:
            if not isinstance(label, str) or not label.strip():
                raise InvalidLabelError("labels must be non-empty names")
            if any(sep in label for sep in ",|"):
                raise InvalidLabelError(f"label {label!r} contains ',' or '|'; those separate "
                                        "labels, so leave them out of names")
            if label in seen:
                raise InvalidLabelError(f"the label '{label}' is given twice")
            seen.add(label)

    def validate(self, task: Task, value: Any) -> Any:
        known = ", ".join(task.labels)
        if task.multi_label:
            if isinstance(value, str):
                value = [v.strip() for v in value.replace("|", ",").split(",") if v.strip()]
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                raise InvalidLabelError(f"a label of task '{task.name}' is a list of names "
                                        f"(from: {known}), not {value!r}")
            unknown = sorted(set(value) - set(task.labels))
            if unknown:
                raise InvalidLabelError(f"unknown label(s) {', '.join(unknown)} for task "
                                        f"'{task.name}'; use some of: {known}")
            return sorted(set(value))
        if isinstance(value, (list, tuple)) and len(value) == 1:
            value = value[0]
        if not isinstance(value, str):
            raise InvalidLabelError(f"a label of task '{task.name}' is one name (one of: "
                                    f"{known}), not {value!r}")
        if value not in task.labels:
            raise InvalidLabelError(f"unknown label '{value}' for task '{task.name}'; use one "
                                    f"of: {known}")
        return value

    # -- "training": freeze the rules, suggest missing ones, measure them --------------------
    def train(self, task: Task, train: list[Example], evaluation: list[Example],
              options: TrainOptions, output_dir: Path) -> TrainResult:
        """Write the task's rules to ``rules.json``; a label without a rule gets one
        suggested from the training examples (its most distinctive words). Metrics are the
        rules' scores on ``evaluation``."""
        started = time.perf_counter()
        rules = rules_for(task)
        missing = [label for label in task.labels if label not in rules]
        suggested = suggest_rules(task, train, missing) if missing else {}
        rules.update(suggested)
        if options.progress and suggested:
            for label, rule in suggested.items():
                options.progress(f"suggested a rule for {label}: {rule.describe()}")
        write_rules(output_dir, rules)
        metrics = {}
        if evaluation:
            predictor = KeywordsPredictor(task.labels, rules, multi_label=task.multi_label)
            metrics = self.evaluate(task, evaluation,
                                    predictor.predict([e.text for e in evaluation]))
        return TrainResult(metrics=metrics, info={
            "method": "rules", "suggested": {k: r.to_dict() for k, r in suggested.items()},
            "labels_without_rule": [label for label in task.labels if label not in rules],
            "train_seconds": round(time.perf_counter() - started, 3)})

    def load(self, task: Task, model_dir: Path) -> KeywordsPredictor:
        rules = rules_for(task, model_dir)
        if not rules:
            raise InvalidInputError(
                f"task '{task.name}' has no keyword rules yet; add one with 'doctagger "
                f"keywords set {task.name} LABEL --any \"word word\"'")
        return KeywordsPredictor(task.labels, rules, multi_label=task.multi_label)

    def evaluate(self, task: Task, examples: list[Example],
                 predictions: list[Prediction]) -> dict:
        """Accuracy (exact match of the label set), per-label precision/recall/F1, macro and
        micro F1, and coverage (the share of items some rule matched)."""
        per_label = {label: {"tp": 0, "fp": 0, "fn": 0} for label in task.labels}
        exact = covered = 0
        for example, prediction in zip(examples, predictions):
            gold, pred = _as_set(example.value), _as_set(prediction.value)
            exact += gold == pred
            covered += bool(pred)
            for label in per_label:
                per_label[label]["tp"] += label in gold and label in pred
                per_label[label]["fp"] += label not in gold and label in pred
                per_label[label]["fn"] += label in gold and label not in pred
        report = {}
        for label, c in per_label.items():
            precision = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 0.0
            recall = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 0.0
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            report[label] = {"precision": round(precision, 4), "recall": round(recall, 4),
                             "f1": round(f1, 4), "support": c["tp"] + c["fn"]}
        tp = sum(c["tp"] for c in per_label.values())
        fp = sum(c["fp"] for c in per_label.values())
        fn = sum(c["fn"] for c in per_label.values())
        n = len(examples)
        return {
            "accuracy": round(exact / n, 4) if n else 0.0,
            "macro_f1": round(sum(r["f1"] for r in report.values()) / len(report), 4)
            if report else 0.0,
            "micro_f1": round(2 * tp / (2 * tp + fp + fn), 4) if tp + fp + fn else 0.0,
            "coverage": round(covered / n, 4) if n else 0.0,
            "per_label": report, "labels": list(task.labels), "examples": n,
        }

    def rollup(self, task: Task, items: list[ChunkPrediction]) -> list[DocumentTag]:
        """A document carries a label when one of its chunks does (score: the best chunk's;
        support: the best three chunks). A single-label document-level task keeps only
        the label that most chunks carry."""
        found: dict[str, list[tuple[float, int]]] = {}
        for item in items:
            for label in _as_set(item.prediction.value):
                found.setdefault(label, []).append((float(item.prediction.score), item.chunk_id))
        tags = []
        for label in task.labels:
            hits = sorted(found.get(label, []), key=lambda h: (-h[0], h[1]))
            if hits:
                tags.append(DocumentTag(label=label, score=hits[0][0],
                                        chunk_ids=[c for _, c in hits[:TOP_CHUNKS]],
                                        extra={"matching_chunks": len(hits)}))
        if task.level == "document" and not task.multi_label and tags:
            tags = [max(tags, key=lambda t: (t.extra["matching_chunks"], t.score))]
        return tags


def write_rules(model_dir: Path, rules: dict[str, Rule]) -> Path:
    path = Path(model_dir) / RULES_FILE
    path.write_text(json.dumps({"rules": {k: r.to_dict() for k, r in rules.items()}},
                               indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
