"""Predictors: what ``doctagger tag`` calls. ``predict(texts)`` returns one Prediction per
text, with per-label probabilities in ``scores``.

Speed (measured in docs/classification.md): each text is tokenised once with the fast
tokenizer, windows are sorted by length and batched (a batch pads only to its own longest
member), the model runs under ``torch.inference_mode`` with SDPA attention on every core.
A text longer than the model's window (512 tokens for BERT-like models, the same as
``pipeline(..., truncation=True)``) is read as overlapping windows whose probabilities are
averaged, so a whole document can be passed too.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from doctagger.tasktypes import Prediction
from doctagger_classification import multilabel
from doctagger_classification.batching import (CPU_BATCH, DEFAULT_BATCH,  # noqa: F401
                                               GPU_BATCH, average_windows, default_batch,
                                               quiet, run_batched, tokenize_windows,
                                               use_all_cores)


@dataclass
class ClassPrediction(Prediction):
    """A Prediction that also carries the per-label thresholds of a multi-label model (the
    document-level roll-up compares mean probabilities with them)."""

    thresholds: dict[str, float] | None = None


class _Base:
    labels: list[str]
    multi_label: bool
    thresholds: list[float]
    batch_size: int

    def probabilities(self, texts: Sequence[str], batch_size: int | None = None):
        raise NotImplementedError

    def predict(self, texts: Sequence[str], batch_size: int | None = None) -> list[Prediction]:
        """One Prediction per text: value, score (its confidence) and scores (per label)."""
        texts = [t if t is not None else "" for t in texts]
        if not texts:
            return []
        probs = self.probabilities(texts, batch_size)
        return [to_prediction(row, self.labels, self.multi_label, self.thresholds)
                for row in probs.tolist()]

    def document_probabilities(self, documents: Sequence[Sequence[str]],
                               batch_size: int | None = None):
        """A tensor (len(documents), labels): each document's mean chunk probabilities."""
        import torch

        flat = [part for parts in documents for part in (parts or [""])]
        owner = [i for i, parts in enumerate(documents) for _ in (parts or [""])]
        probs = self.probabilities(flat, batch_size) if flat else torch.zeros((0, 0))
        return average_windows(list(probs), owner, len(documents))

    def predict_documents(self, documents: Sequence[Sequence[str]],
                          batch_size: int | None = None) -> list[Prediction]:
        """One Prediction per document given as its chunk texts: the mean of the chunks'
        probabilities, decided as for one text (the roll-up and the held-out evaluation of
        document-level tasks do the same)."""
        if not documents:
            return []
        probs = self.document_probabilities(documents, batch_size)
        return [to_prediction(row, self.labels, self.multi_label, self.thresholds)
                for row in probs.tolist()]


def to_prediction(row: list[float], labels: list[str], multi_label: bool,
                  thresholds: list[float]) -> Prediction:
    scores = {label: float(p) for label, p in zip(labels, row)}
    if multi_label:
        value = multilabel.decide(row, labels, thresholds)
        return ClassPrediction(value=value, score=multilabel.confidence(row, thresholds),
                               scores=scores, thresholds=dict(zip(labels, thresholds)))
    best = max(range(len(row)), key=row.__getitem__)
    return Prediction(value=labels[best], score=float(row[best]), scores=scores)


class HFPredictor(_Base):
    """A fine-tuned AutoModelForSequenceClassification folder."""

    def __init__(self, model_dir: str | Path, *, labels: list[str] | None = None,
                 multi_label: bool | None = None, batch_size: int | None = DEFAULT_BATCH,
                 window: int | None = None, quantize: bool = False, device: str | None = None,
                 runtime: str | None = None):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        use_all_cores()
        quiet()
        self.model_dir = Path(model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir))
        model = AutoModelForSequenceClassification.from_pretrained(
            str(self.model_dir), attn_implementation="sdpa")
        config = model.config
        self.labels = labels or [config.id2label[i] for i in range(config.num_labels)]
        self.multi_label = (config.problem_type == "multi_label_classification"
                            if multi_label is None else multi_label)
        self.thresholds = multilabel.load(self.model_dir, self.labels)
        limit = int(getattr(config, "max_position_embeddings", 512) or 512)
        self.window = int(window or min(limit, 512))
        if device is None:
            from doctagger.training import choose_device

            device = choose_device()
        self.device = device
        self.batch_size = int(batch_size or default_batch(device))
        self.model = model.to(self.device).eval()
        # fp32, or int8/bf16 when it agrees with fp32 (doctagger_classification.runtime)
        from doctagger_classification.runtime import Runtime

        self.runtime = Runtime(self.model, device=self.device,
                               mode="int8" if quantize else runtime,
                               multi_label=self.multi_label, thresholds=self.thresholds)
        #: fine-tuned on whole documents read from their start (finetune.DOCUMENT_MAX_LENGTH):
        #: a document is predicted as its first tokens, as learned, not as the mean of its
        #: chunks (doctagger.document_predictions)
        self.whole_documents = bool(getattr(config, "doctagger_whole_documents", False))
        self.document_length = min(int(self.tokenizer.model_max_length or self.window),
                                   self.window)
        self.pad_id = self.tokenizer.pad_token_id or 0

    def document_probabilities(self, documents, batch_size: int | None = None):
        if not self.whole_documents:
            return super().document_probabilities(documents, batch_size)
        # the text a document example holds (doctagger.labels: chunks joined by "\n")
        texts = ["\n".join(parts or [""]) for parts in documents]
        ids = self.tokenizer(texts, truncation=True, max_length=self.document_length,
                             padding=False)["input_ids"]
        rows = run_batched(ids, self.pad_id, batch_size or self.batch_size, self._forward)
        return average_windows([r.cpu() for r in rows], list(range(len(texts))), len(texts))

    def _forward(self, ids, mask):
        return self.runtime(ids, mask)

    def probabilities(self, texts: Sequence[str], batch_size: int | None = None):
        """A float tensor (len(texts), labels)."""
        windows, owner = tokenize_windows(self.tokenizer, texts, self.window)
        rows = run_batched(windows, self.pad_id, batch_size or self.batch_size, self._forward)
        return average_windows([r.cpu() for r in rows], owner, len(texts))


class HeadPredictor(_Base):
    """A frozen encoder + the linear head saved by the "head" method.

    The encoder runs on the GPU when there is one (fp32), else as ``DOCTAGGER_RUNTIME``
    says (``runtime``; see doctagger_classification.runtime): with ``auto``, bf16 on a CPU
    with native bf16, else fp32. The fast version is checked against fp32 text by text on
    the first texts (their fp32 answers are returned meanwhile) and, once kept, every text
    whose decision is too close to call is embedded again in fp32: the head was trained on
    fp32 embeddings of whole texts, so the check is on the head's answer for the whole
    text."""

    def __init__(self, model_dir: str | Path, *, batch_size: int | None = DEFAULT_BATCH,
                 runtime: str | None = None, device: str | None = None):
        import torch

        from doctagger_classification import head
        from doctagger_classification.encoder import Encoder
        from doctagger.runtime import fast_version
        from doctagger_classification.runtime import ClassCheck

        self.model_dir = Path(model_dir)
        config, weight, bias = head.load(self.model_dir)
        self.config = config
        self.labels = list(config["labels"])
        self.multi_label = bool(config["multi_label"])
        self.thresholds = multilabel.load(self.model_dir, self.labels)
        self.encoder = Encoder(_encoder_path(config), max_length=int(config["max_length"]),
                               long_texts=config.get("long_texts", "windows"), device=device)
        self.weight = torch.from_numpy(weight)
        self.bias = torch.from_numpy(bias)
        #: TF-IDF evidence mixed into the head's probabilities (doctagger_classification.lexical)
        self.lexical = None
        if config.get("lexical"):
            from doctagger_classification.lexical import Lexical

            self.lexical = Lexical(self.model_dir, config["lexical"])
        #: trained on whole documents read from their start (head.READINGS "truncate"): a
        #: document is predicted as its whole text, as it was learned, not as the mean of
        #: its chunks (doctagger.document_predictions)
        self.whole_documents = bool(config.get("whole_documents"))
        self.batch_size = int(batch_size or default_batch(self.encoder.device))
        encoder = self.encoder
        self.fast, fast_name, reason = fast_version(
            encoder.model, runtime, encoder.device,
            lambda model, ids, mask: encoder._forward(ids, mask, model))
        self.runtime = ClassCheck(fast_name, rows="texts", multi_label=self.multi_label,
                                  thresholds=self.thresholds, reason=reason)

    def document_probabilities(self, documents, batch_size: int | None = None):
        if not self.whole_documents:
            return super().document_probabilities(documents, batch_size)
        # the text a document example holds (doctagger.labels: chunks joined by "\n")
        return self.probabilities(["\n".join(parts or [""]) for parts in documents],
                                  batch_size)

    def _head(self, x, texts):
        import torch

        logits = torch.from_numpy(x) @ self.weight.T + self.bias
        if self.multi_label:
            return logits.sigmoid()
        probs = logits.softmax(-1)
        return self.lexical.mix(probs, texts) if self.lexical is not None else probs

    def probabilities(self, texts: Sequence[str], batch_size: int | None = None):
        import torch

        texts = list(texts)
        size = batch_size or self.batch_size
        check = self.runtime
        if check.dropped or not texts:
            return self._head(self.encoder.embed(texts, batch_size=size), texts)
        # both ways (fp32's answers returned): the first texts, then one call now and then
        both = (min(len(texts), check.left_to_check) if check.checking
                else len(texts) if check.auditing() else 0)
        if both:
            exact = self._head(self.encoder.embed(texts[:both], batch_size=size), texts[:both])
            check.compare(exact, self._head(self.encoder.embed(texts[:both], batch_size=size,
                                                               forward=self.fast),
                                            texts[:both]))
            if both == len(texts):
                return exact
            return torch.cat([exact, self.probabilities(texts[both:], batch_size)])
        probs = self._head(self.encoder.embed(texts, batch_size=size, forward=self.fast), texts)
        unclear = check.unclear(probs)
        if len(unclear):
            again = [texts[i] for i in unclear.tolist()]
            probs[unclear] = self._head(self.encoder.embed(again, batch_size=size), again)
        return probs


def _encoder_path(config: dict) -> str:
    """The encoder a head was trained on: its recorded folder when it still exists, else
    the name given at training time, resolved again (None: the bundled MiniLM)."""
    path = config.get("encoder_path")
    if path and Path(path).is_dir():
        return path
    from doctagger.training import resolve_base_model

    return resolve_base_model(config.get("encoder"))


def load(model_dir: str | Path, *, batch_size: int | None = DEFAULT_BATCH, **kwargs):
    """The right predictor for a model folder written by this plugin."""
    from doctagger_classification import head

    if head.is_head(Path(model_dir)):
        runtime = "int8" if kwargs.get("quantize") else kwargs.get("runtime")
        return HeadPredictor(model_dir, batch_size=batch_size, runtime=runtime,
                             device=kwargs.get("device"))
    return HFPredictor(model_dir, batch_size=batch_size, **kwargs)


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text()) if Path(path).exists() else {}
