"""The task-type contract: what a plugin's task type provides and what the core hands it.

A task type is any object (usually a class registered with ``register(TaskTypeClass)``)
with the attributes and methods of :class:`TaskType` below. Inheriting from it is optional;
it only documents the interface and supplies defaults. Shared Hugging Face plumbing
(device choice, Trainer set-up, metrics, saving) lives in :mod:`doctagger.training` as
helpers a plugin may call.

Label values, everywhere in doctagger (index, import files, predictions):
- single-label classification: a ``str`` class name;
- multi-label classification: a sorted ``list[str]``;
- NER: a ``list`` of spans ``{"start": int, "end": int, "label": str}`` (character offsets
  into the chunk text, end exclusive), sorted by start.

What the core does around a task type:
- ``tasks create`` calls :meth:`TaskType.check_labels` on the label set;
- every label written (``label``, ``import``) goes through :meth:`TaskType.validate`;
- ``train`` gathers labelled examples, runs the data checks, makes a held-out split that
  never puts chunks of one document on both sides, calls :meth:`TaskType.train` with an
  empty model directory, and registers the version only when it returns;
- ``tag`` and ``label --strategy uncertain`` call :meth:`TaskType.load` once, then
  ``predictor.predict(texts)`` on batches, and :meth:`TaskType.rollup` per document;
- ``eval`` calls :meth:`TaskType.evaluate`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol, Sequence

from doctagger.errors import InvalidLabelError


@dataclass
class Task:
    """A labelling scheme, as stored in the index."""

    name: str
    type: str
    labels: list[str]
    multi_label: bool = False
    level: str = "chunk"  # "chunk" or "document"
    description: str | None = None
    options: dict = field(default_factory=dict)
    id: int | None = None


@dataclass
class Example:
    """One labelled text handed to training or evaluation."""

    text: str
    value: Any
    group: Any = None  # examples with the same group (a document) stay on one side of a split
    chunk_id: int | None = None
    document_id: int | None = None
    #: document-level examples: the document's chunk texts in order (``text`` joins them)
    parts: list[str] | None = None


@dataclass
class Prediction:
    """What a predictor returns for one text."""

    value: Any  # a label value, per the conventions above
    score: float  # confidence of `value`, 0..1
    scores: dict[str, float] | None = None  # per-label probabilities, when the model has them


@dataclass
class ChunkPrediction:
    """A prediction together with where its chunk lies, as ``rollup`` receives it."""

    chunk_id: int
    page: int | None
    text: str
    prediction: Prediction


@dataclass
class DocumentTag:
    """A tag on a whole document, rolled up from chunk predictions."""

    label: str
    score: float
    chunk_ids: list[int] = field(default_factory=list)  # top supporting chunks, best first
    extra: dict = field(default_factory=dict)  # e.g. NER: {"text", "page", "start", "end"}


@dataclass
class TrainOptions:
    """Options of ``doctagger train``; ``None`` means "the task type's default"."""

    base_model: str | None = None
    method: str = "auto"  # auto | finetune | head
    preset: str | None = None  # conservative | aggressive
    epochs: float | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    weight_decay: float | None = None
    max_length: int | None = None
    seed: int = 42
    eval_fraction: float = 0.2
    resume: bool = False
    report_to: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    progress: Callable[[str], None] | None = None  # one-line status messages for the user


@dataclass
class TrainResult:
    """What ``train`` returns: held-out metrics and what to record about the run."""

    metrics: dict
    info: dict = field(default_factory=dict)  # method, base model, parameters, timings, ...


class Predictor(Protocol):
    def predict(self, texts: Sequence[str]) -> list[Prediction]: ...


class TaskType:
    """Documentation base class and defaults. Subclassing is optional."""

    name: str = ""
    description: str = ""
    #: "class" (one label per item, or several with multi_label) or "spans"
    value_kind: str = "class"
    #: levels this task type supports
    levels: tuple[str, ...] = ("chunk", "document")
    #: True when `train` is needed before `tag` (a rule-based task type sets False)
    needs_training: bool = True
    #: the `train --method` values offered (checked before any work); None offers all
    methods: tuple[str, ...] | None = None

    def check_labels(self, labels: list[str], *, multi_label: bool, level: str) -> None:
        """Refuse a label set or options that cannot work (raise InvalidLabelError)."""
        if not labels:
            raise InvalidLabelError("give at least one label with --labels A,B,C")

    def validate(self, task: Task, value: Any) -> Any:
        """Return the normalised value, or raise InvalidLabelError saying what is wrong."""
        raise NotImplementedError

    def train(self, task: Task, train: list[Example], evaluation: list[Example],
              options: TrainOptions, output_dir: Path) -> TrainResult:
        """Train on ``train``, measure on ``evaluation``, save a model into ``output_dir``."""
        raise NotImplementedError

    def load(self, task: Task, model_dir: Path) -> Predictor:
        """Load a model saved by ``train``; return an object with ``predict(texts)``."""
        raise NotImplementedError

    def evaluate(self, task: Task, examples: list[Example],
                 predictions: list[Prediction]) -> dict:
        """Metrics of ``predictions`` against the gold ``examples`` (same order)."""
        raise NotImplementedError

    def rollup(self, task: Task, items: list[ChunkPrediction]) -> list[DocumentTag]:
        """Turn one document's chunk predictions into document tags."""
        raise NotImplementedError

    def uncertainty(self, task: Task, prediction: Prediction) -> float:
        """How unsure the model is about one item (higher = ask sooner). Default: 1 - score."""
        return 1.0 - float(prediction.score)

    def render(self, task: Task, text: str, value: Any) -> str:
        """A one-line human rendering of a value (for `show`, `label`, exports)."""
        if value is None:  # a predictor's "no answer"
            return "(no answer)"
        if isinstance(value, list):
            if value and isinstance(value[0], dict):
                return ", ".join(f"{text[s['start']:s['end']]!r}={s['label']}" for s in value)
            return ", ".join(map(str, value))
        return str(value)


def value_labels(value: Any) -> list[str]:
    """The label names a value mentions (for counting and data checks)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [value["label"]] if "label" in value else []
    if isinstance(value, Iterable):
        out = []
        for item in value:
            out.extend(value_labels(item))
        return out
    return [str(value)]
