"""The "finetune" method: AutoModelForSequenceClassification trained with the Hugging Face
Trainer through the helpers of :mod:`doctagger.training`.

What it adds to the guide's recipe: a maximum length measured on the data (capped at
:data:`MAX_LENGTH_CAP`), dynamic padding, length-grouped batches, warm-up as a fraction,
class weights when labels are imbalanced, the best epoch kept by held-out macro-F1 with
early stopping, out-of-memory fallback, checkpoints for ``--resume``. The result is a plain
Hugging Face folder that ``transformers.pipeline("text-classification", model=DIR)`` loads.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

from doctagger_classification import multilabel

#: Defaults measured on 2 CPU cores with the bundled MiniLM (docs/classification.md).
DEFAULTS = {"learning_rate": 1e-4, "epochs": 3, "batch_size": 16, "weight_decay": 0.01,
            "warmup": 0.1}
#: The data decides the maximum length, up to this cap (abstracts: 128 tokens scored as well
#: as 256 at half the cost; texts longer than it are still read whole at prediction time).
MAX_LENGTH_CAP = 128
#: From this many training texts, batches are grouped by length (less padding).
GROUP_BY_LENGTH_FROM = 64
#: Document-level tasks fine-tune on each document's beginning (its title and opening
#: clauses), this many tokens unless --max-length says otherwise: on the contract PDFs
#: (108 documents, 5 epochs) the first 128 tokens scored 0.962 macro-F1 on unseen
#: contracts in 78 s, as well as 256 at twice the cost, where chunks inheriting the label
#: scored 0.54 (docs/classification.md). The saved tokenizer's model_max_length is set to
#: it, so ``pipeline(..., truncation=True)`` reads a document as doctagger does.
DOCUMENT_MAX_LENGTH = 128
#: Without --epochs or --preset, a run gets at least this many optimisation steps, within
#: MAX_EPOCHS passes: 3 epochs over 86 documents are 18 steps; on the contract PDFs 35
#: steps (5 epochs) scored as well as 70
MIN_STEPS = 40
MAX_EPOCHS = 10
#: config.json key saying the model reads a document as its whole text, from the start
WHOLE_DOCUMENTS_KEY = "doctagger_whole_documents"


def resolve(options, n_texts: int) -> dict:
    """The run's hyperparameters (doctagger.training.hyperparameters over :data:`DEFAULTS`),
    with enough epochs for :data:`MIN_STEPS` steps on small data when the user set neither
    --epochs nor --preset."""
    import math

    from doctagger import training

    hp = training.hyperparameters(options, n_texts, DEFAULTS)
    if options.epochs is None and not options.preset:
        steps = max(1, math.ceil(n_texts / max(1, int(hp["batch_size"]))))
        hp["epochs"] = float(min(MAX_EPOCHS, max(float(hp["epochs"]),
                                                 math.ceil(MIN_STEPS / steps))))
    return hp


def _quiet_transformers():
    """No "weights not initialised" warnings or weight-loading bars: we report ourselves."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _callbacks(has_eval: bool, say):
    from doctagger import training

    callbacks = [training.ProgressCallback(say)]
    if has_eval:
        callbacks.append(training.early_stopping(2))
    return callbacks


def _dataset(tokenizer, texts, targets, max_length):
    from datasets import Dataset

    enc = tokenizer(list(texts), truncation=True, max_length=max_length)
    return Dataset.from_dict({"input_ids": enc["input_ids"],
                              "attention_mask": enc["attention_mask"],
                              "labels": list(targets)})


def _metrics_fn(labels: list[str], multi_label: bool):
    """The per-epoch held-out scores (which pick the best epoch); multi-label at 0.5."""
    from doctagger.training import classification_scores, scalar_metrics

    def compute(eval_pred):
        import numpy as np

        logits, gold = eval_pred.predictions, eval_pred.label_ids
        if isinstance(logits, tuple):
            logits = logits[0]
        logits = np.asarray(logits, dtype=np.float64)
        if multi_label:  # the default thresholds: none are ever tuned on the held-out split
            probs = 1.0 / (1.0 + np.exp(-logits))
            pred = (probs >= multilabel.DEFAULT).astype(int).tolist()
            gold = (np.asarray(gold) > 0.5).astype(int).tolist()
        else:
            pred, gold = logits.argmax(-1).tolist(), np.asarray(gold).astype(int).tolist()
        return scalar_metrics(classification_scores(gold, pred, labels, multi_label))

    return compute


def train(*, labels: list[str], multi_label: bool, texts: list[str], targets: list,
          eval_texts: list[str], eval_targets: list, options, output_dir: Path,
          base_model: str, report=None, whole_documents: bool = False) -> dict:
    """Fine-tune ``base_model`` and save it into ``output_dir``. Returns the run's info.
    ``whole_documents``: the texts are whole documents, read from their start
    (:data:`DOCUMENT_MAX_LENGTH` tokens unless --max-length)."""
    import torch
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer,
                              DataCollatorWithPadding)

    from doctagger import training
    from doctagger_classification.batching import use_all_cores

    _quiet_transformers()
    use_all_cores()
    started = time.perf_counter()
    output_dir = Path(output_dir)
    device = training.choose_device()
    hp = resolve(options, len(texts))
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    if whole_documents:
        max_length = int(hp["max_length"] or DOCUMENT_MAX_LENGTH)
    else:
        max_length = int(hp["max_length"] or training.max_length_for(tokenizer, texts,
                                                                     cap=MAX_LENGTH_CAP))
    hp["max_length"] = max_length
    problem = "multi_label_classification" if multi_label else "single_label_classification"
    has_eval = bool(eval_texts)
    train_data = _dataset(tokenizer, texts, targets, max_length)
    eval_data = None
    if has_eval:  # sorted by length: evaluation batches pad little
        order = sorted(range(len(eval_texts)), key=lambda i: len(eval_texts[i]))
        eval_data = _dataset(tokenizer, [eval_texts[i] for i in order],
                             [eval_targets[i] for i in order], max_length)
    weights = training.class_weights(targets, len(labels))
    folder = training.checkpoint_dir(options, output_dir)
    resume = training.resume_checkpoint(options, folder)
    say = report or options.progress

    def build(batch_size: int, grad_accum: int):
        torch.manual_seed(int(options.seed))
        model = AutoModelForSequenceClassification.from_pretrained(
            base_model, num_labels=len(labels), problem_type=problem,
            id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)})
        run_hp = dict(hp, batch_size=batch_size, grad_accum=grad_accum)
        args = training.training_arguments(
            folder, run_hp, device=device, has_eval=has_eval, metric="macro_f1",
            seed=int(options.seed), report_to=options.report_to,
            group_by_length=len(texts) >= GROUP_BY_LENGTH_FROM, resume_from=resume)
        return training.WeightedLossTrainer(
            model=model, args=args, train_dataset=train_data, eval_dataset=eval_data,
            processing_class=tokenizer, data_collator=DataCollatorWithPadding(tokenizer),
            compute_metrics=_metrics_fn(labels, multi_label) if has_eval else None,
            callbacks=_callbacks(has_eval, say),
            class_weights=weights, multi_label=multi_label)

    trainer = training.train_with_oom_fallback(build, hp["batch_size"], resume=resume,
                                               report=say)
    model = trainer.model.to("cpu").eval()
    if whole_documents:  # read as trained, by doctagger and by pipeline(truncation=True)
        setattr(model.config, WHOLE_DOCUMENTS_KEY, True)
        tokenizer.model_max_length = max_length
    training.save_hf_model(model, tokenizer, output_dir, labels=labels)
    if folder.resolve().is_relative_to(output_dir.resolve()):
        shutil.rmtree(folder, ignore_errors=True)
    state = trainer.state
    return {
        "method": "finetune", "base_model": base_model, "device": device,
        "max_length": max_length,
        **({"document_prediction": "whole text"} if whole_documents else {}),
        "hyperparameters": {k: hp[k] for k in ("learning_rate", "epochs", "batch_size",
                                               "weight_decay", "warmup", "preset", "seed")},
        "batch_size_used": int(trainer.args.per_device_train_batch_size),
        "gradient_accumulation": int(trainer.args.gradient_accumulation_steps),
        "class_weights": weights, "epochs_run": float(state.epoch or 0),
        "best_checkpoint_metric": state.best_metric,
        "train_seconds": round(time.perf_counter() - started, 2),
        "resumed_from": str(resume) if resume else None,
    }
