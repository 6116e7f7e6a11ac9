"""The "ner" task type: entity spans in chunk text, learned by a token-classification model.

Label values are lists of ``{"start": int, "end": int, "label": str}``: character offsets
into the chunk text, end exclusive, sorted by start, never overlapping. ``validate`` cannot
see the text, so it checks everything but the upper bound; the core checks that a span
ends within its text where it knows the text (``doctagger.formats`` does on import).

Predicted spans also carry a ``score`` (the entity's confidence); ``validate`` drops it, so a
prediction accepted as a label is a plain span list again.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

from doctagger.errors import InvalidLabelError
from doctagger.tasktypes import (
    ChunkPrediction,
    DocumentTag,
    Example,
    Prediction,
    Task,
    TaskType,
    TrainOptions,
    TrainResult,
)

_NAME = re.compile(r"^\S+$")


class NERTaskType(TaskType):
    name = "ner"
    description = "named entities: character spans in chunk text (PER, ORG, ...)"
    value_kind = "spans"
    levels = ("chunk",)
    needs_training = True
    #: the ``train --method`` values it offers (checked by the core before any work): a
    #: token classifier is always fine-tuned ("auto" means that too)
    methods = ("auto", "finetune")

    # -- labels ----------------------------------------------------------------------------
    def check_labels(self, labels: list[str], *, multi_label: bool, level: str) -> None:
        if not labels:
            raise InvalidLabelError("give the entity types with --labels, e.g. "
                                    "--labels PER,ORG,LOC")
        if level != "chunk":
            raise InvalidLabelError("ner tasks label spans inside chunk text, so they are "
                                    "chunk-level only; create the task with --level chunk")
        if multi_label:
            raise InvalidLabelError("--multi-label does not apply to ner (a chunk can already "
                                    "hold any number of entities); leave it out")
        seen = set()
        for label in labels:
            if not _NAME.match(label):
                raise InvalidLabelError(f"entity type {label!r} contains white space; use names "
                                        "such as PER or PRODUCT_NAME")
            if label == "O" or label[:2] in ("B-", "I-", "E-", "S-"):
                raise InvalidLabelError(f"{label!r} looks like a BIO tag; give the entity types "
                                        "only (PER, ORG), doctagger makes the B-/I- tags")
            if label in seen:
                raise InvalidLabelError(f"entity type {label!r} is given twice; list each once")
            seen.add(label)

    def validate(self, task: Task, value: Any) -> list[dict]:
        from doctagger.formats.base import ValueProblem, normalize_spans

        if isinstance(value, list) and any(isinstance(v, dict) and "score" in v for v in value):
            value = [{k: v for k, v in item.items() if k != "score"}
                     if isinstance(item, dict) else item for item in value]
        try:
            spans = normalize_spans(value, None)
        except ValueProblem as e:
            raise InvalidLabelError(str(e)) from None
        allowed = set(task.labels)
        for span in spans:
            if span["label"] not in allowed:
                raise InvalidLabelError(
                    f"unknown entity type {span['label']!r} for task {task.name}; use one of "
                    f"{', '.join(task.labels)} (or add it to the task: doctagger tasks "
                    f"add-labels {task.name} {shlex.quote(span['label'])})")
        return spans

    # -- models ----------------------------------------------------------------------------
    def train(self, task: Task, train: list[Example], evaluation: list[Example],
              options: TrainOptions, output_dir: Path) -> TrainResult:
        from doctagger_ner.train import train_ner

        return train_ner(task, train, evaluation, options, Path(output_dir))

    def load(self, task: Task, model_dir: Path):
        from doctagger_ner.predictor import NERPredictor

        return NERPredictor(Path(model_dir))

    def evaluate(self, task: Task, examples: list[Example],
                 predictions: list[Prediction]) -> dict:
        """seqeval entity-level precision/recall/F1, overall and ``per_type`` (exact type and
        boundaries), through doctagger's shipped metric module."""
        from doctagger.training import ner_scores

        return ner_scores([e.value or [] for e in examples],
                          [p.value or [] for p in predictions])

    # -- documents -------------------------------------------------------------------------
    def rollup(self, task: Task, items: list[ChunkPrediction]) -> list[DocumentTag]:
        """The core's roll-up of spans (one rule for every entity value): one tag per
        distinct (entity type, surface text with case and spacing folded), its score the
        best mention's, its supporting chunks the surest first, and in ``extra`` the first
        mention in reading order (text, page, chunk, offsets) and the number of mentions."""
        from doctagger.rollup import rollup_spans

        return rollup_spans(task, items)

    def uncertainty(self, task: Task, prediction: Prediction) -> float:
        """1 - the lowest word confidence in the chunk (any word the model hesitates on,
        entity or not); 1 - score when that is not at hand."""
        weakest = getattr(prediction, "min_token_confidence", None)
        if weakest is not None:
            return 1.0 - float(weakest)
        return 1.0 - float(prediction.score)
