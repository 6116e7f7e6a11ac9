"""The "classification" task type: one label per chunk or document, or several
(multi-label), learned from your labels with a fine-tuned transformer or a fast
frozen-encoder head."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from doctagger.errors import InvalidLabelError
from doctagger.tasktypes import (ChunkPrediction, DocumentTag, Example, Prediction, Task,
                                 TaskType, TrainOptions, TrainResult)
from doctagger_classification import rollup as _rollup
from doctagger_classification import values


class ClassificationTaskType(TaskType):
    name = "classification"
    description = ("Text classification: one label (or several, with --multi-label) per "
                   "chunk or per document. Methods: finetune, head (fast, little data), "
                   "auto (default).")
    value_kind = "class"
    levels = ("chunk", "document")
    needs_training = True

    def check_labels(self, labels: list[str], *, multi_label: bool = False,
                     level: str = "chunk") -> None:
        values.check_labels(list(labels), multi_label=multi_label)
        if level not in self.levels:
            raise InvalidLabelError(f"level '{level}' is not supported: use chunk or document")

    def validate(self, task: Task, value: Any) -> Any:
        return values.normalise(task, value)

    def train(self, task: Task, train: list[Example], evaluation: list[Example],
              options: TrainOptions, output_dir: Path) -> TrainResult:
        from doctagger_classification import methods

        return methods.train(task, train, evaluation, options, Path(output_dir))

    def load(self, task: Task, model_dir: Path, *, batch_size: int | None = None, **kwargs):
        """A predictor with ``predict(texts, batch_size=None)`` and ``probabilities``.
        ``batch_size``: windows a forward pass (default: by device, see
        doctagger_classification.predictor.default_batch)."""
        from doctagger_classification.predictor import load

        return load(Path(model_dir), batch_size=batch_size, **kwargs)

    def evaluate(self, task: Task, examples: list[Example],
                 predictions: list[Prediction]) -> dict:
        from doctagger.training import classification_scores

        if len(examples) != len(predictions):
            raise ValueError(f"{len(examples)} examples but {len(predictions)} predictions")
        labels = list(task.labels)
        for p in predictions:  # a model may know a label the task no longer lists
            for label in (p.value if isinstance(p.value, list) else [p.value]):
                if label is not None and label not in labels:
                    labels.append(label)
        scores = classification_scores([e.value for e in examples],
                                       [p.value for p in predictions], labels,
                                       task.multi_label)
        if not task.multi_label:
            from doctagger_classification.values import honesty

            scores.update(honesty([e.value for e in examples], [p.value for p in predictions],
                                  [float(p.score) for p in predictions], labels))
        return scores

    def rollup(self, task: Task, items: list[ChunkPrediction]) -> list[DocumentTag]:
        return _rollup.rollup(task, items)

    def uncertainty(self, task: Task, prediction: Prediction) -> float:
        return _rollup.uncertainty(task, prediction)

    def render(self, task: Task, text: str, value: Any) -> str:
        if isinstance(value, list):
            return ", ".join(value) if value else "(none)"
        return str(value)
