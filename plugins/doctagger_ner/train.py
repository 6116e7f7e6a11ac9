"""Fine-tuning a token-classification model on NER spans, through the Hugging Face Trainer.

The recipe (what the guide's readers would otherwise write by hand, with its pitfalls
handled):

- base model: the bundled all-MiniLM-L6-v2 unless ``--base-model`` names another (any HF id
  or folder with a FAST tokenizer: NER needs character offsets);
- labels: ``O`` then ``B-X``/``I-X`` for each entity type of the task, on the first
  sub-token of each word, -100 on the other sub-tokens and the special tokens (align.py);
- length: measured on the data (98th percentile of token lengths, see
  ``doctagger.training.max_length_for``), never below 128 tokens (dynamic padding makes a
  larger window free for short texts, and chunks tagged later get more context), never above
  the model's positions; longer texts are cut into windows that overlap by a quarter;
- hyperparameters: ``NER_DEFAULTS`` below, then ``--preset``, then the explicit options;
  warm-up is a fraction of the steps; dynamic padding; the checkpoint with the best
  held-out entity F1 is kept, early stopping after 2 epochs without improvement; device
  chosen automatically; out of memory halves the batch and doubles accumulation;
- metrics: seqeval entity-level precision/recall/F1 on the held-out texts, computed on
  character spans after merging windows (exactly what ``doctagger eval`` measures).

The model folder is a plain Hugging Face directory (config with ``B-X``/``I-X``/``O``
id2label, model.safetensors, tokenizer) plus ``doctagger_ner.json`` (window length and
overlap, for doctagger's predictor). See docs/ner.md for using it with
``transformers.pipeline("token-classification", aggregation_strategy="first")``.
"""
from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

from doctagger.errors import TrainingError
from doctagger.tasktypes import Example, Task, TrainOptions, TrainResult

from doctagger_ner import align
from doctagger_ner.predictor import SETTINGS_FILE, quiet_transformers

#: Token classification needs more passes than sentence classification to learn
#: boundaries, and a small model such as MiniLM likes a higher learning rate.
NER_DEFAULTS = {"learning_rate": 1e-4, "epochs": 8, "batch_size": 16, "weight_decay": 0.01,
                "warmup": 0.1}
MIN_WINDOW = 128
#: Without --epochs, a run gets at least this many optimisation steps (small data sets need
#: many passes: a token classifier first learns to say O everywhere), within MAX_EPOCHS.
MIN_STEPS = 150
MAX_EPOCHS = 40
#: Batches of similar lengths (less padding) from this many training windows on
GROUP_BY_LENGTH_MIN = 1000
#: At most this many evaluations (and checkpoints) per run: every k epochs when epochs > 10.
MAX_EVALS = 10
USAGE = """Without doctagger, it is a plain Hugging Face token-classification folder. The model
learned one BIO tag per word, on the word's first sub-token, so read it word by word
(`aggregation_strategy="first"` gives exactly doctagger's entities; "simple" also runs, but
lets untrained sub-token outputs split or merge words):

```python
from transformers import pipeline
tagger = pipeline("token-classification", model="PATH/TO/MODEL", aggregation_strategy="first")
tagger("Tim Cook visited Apple in Cupertino.")
# [{"entity_group": "PER", "start": 0, "end": 8, "score": ..., "word": "tim cook"}, ...]
```

Texts longer than the window in `doctagger_ner.json` (`max_length` tokens) are read by
doctagger in overlapping windows; with the pipeline pass `stride=` to do the same."""


def _features(windows: list[align.Window], words: list, examples: list[Example],
              label2id: dict[str, int]) -> tuple[dict, int]:
    """Columns for a datasets.Dataset, and how many spans were not on word boundaries."""
    tags, inexact = [], 0
    for ex, w in zip(examples, words):
        t, n = align.word_tags(w, ex.value or [])
        tags.append(t)
        inexact += n
    cols: dict[str, list] = {"input_ids": [], "attention_mask": [], "labels": []}
    if windows and "token_type_ids" in windows[0].extra:
        cols["token_type_ids"] = []
    for win in windows:
        cols["input_ids"].append(win.input_ids)
        cols["attention_mask"].append(win.attention_mask)
        if "token_type_ids" in cols:
            cols["token_type_ids"].append(win.extra["token_type_ids"])
        cols["labels"].append(align.window_labels(len(win.input_ids), win.firsts,
                                                  tags[win.text_index], label2id))
    return cols, inexact


def _window_length(tokenizer, config, texts: list[str], options: TrainOptions) -> int:
    from doctagger import training

    limit = min(int(getattr(config, "max_position_embeddings", 512) or 512),
                training.MAX_POSITIONS)
    if options.max_length:
        if options.max_length < 16:
            raise TrainingError(f"--max-length {options.max_length} is too short for NER; "
                                "give at least 16 tokens")
        return min(int(options.max_length), limit)
    measured = training.max_length_for(tokenizer, texts, cap=limit)
    return max(measured, min(MIN_WINDOW, limit))


def schedule(hp: dict, n_windows: int, options: TrainOptions) -> tuple[float, int | None]:
    """(epochs, evaluate every N steps or None for every epoch). Without --epochs or a
    preset, small data gets enough epochs for MIN_STEPS steps (at most MAX_EPOCHS)."""
    steps_per_epoch = max(1, math.ceil(n_windows / int(hp["batch_size"])))
    epochs = float(hp["epochs"])
    if options.epochs is None and not options.preset:
        epochs = float(min(MAX_EPOCHS, max(epochs, math.ceil(MIN_STEPS / steps_per_epoch))))
    every = math.ceil(epochs / MAX_EVALS)
    return epochs, (every * steps_per_epoch if every > 1 else None)


def early_stopping(patience: int):
    """transformers' EarlyStoppingCallback, counting only once the model finds entities: a
    token classifier first says O everywhere (entity F1 0) and needs time to leave that."""
    from transformers import EarlyStoppingCallback

    class AfterFirstEntities(EarlyStoppingCallback):
        def check_metric_value(self, args, state, control, metric_value):
            if metric_value:
                super().check_metric_value(args, state, control, metric_value)

    return AfterFirstEntities(early_stopping_patience=patience)


def in_order_trainer():
    """A Trainer that evaluates in dataset order. transformers 5 also groups the EVAL set by
    length when training batches are grouped (train_sampling_strategy="group_by_length"),
    which would shuffle the windows that compute_metrics merges back into texts."""
    from torch.utils.data import SequentialSampler
    from transformers import Trainer

    class InOrderTrainer(Trainer):
        def _get_eval_sampler(self, eval_dataset):
            if eval_dataset is None or self.args.world_size > 1:
                return None  # the default; accelerate shards the data in order
            return SequentialSampler(eval_dataset)

    return InOrderTrainer


def train_ner(task: Task, train: list[Example], evaluation: list[Example],
              options: TrainOptions, output_dir: Path) -> TrainResult:
    """Fine-tune on ``train``, keep the best epoch by entity F1 on ``evaluation`` (if any),
    save the model into ``output_dir``; return held-out metrics and run info."""
    if options.method not in (None, "auto", "finetune"):
        raise TrainingError(f"--method {options.method} is not available for ner tasks; "
                            "use --method finetune (or leave it out)")
    if not train:
        raise TrainingError("no labelled chunks to train on; label some with "
                            "'doctagger label' or 'doctagger import'")
    with quiet_transformers():
        return _train(task, train, evaluation, options, Path(output_dir))


def _train(task: Task, train: list[Example], evaluation: list[Example],
           options: TrainOptions, output_dir: Path) -> TrainResult:
    import datasets
    from transformers import (AutoConfig, AutoModelForTokenClassification, AutoTokenizer,
                              DataCollatorForTokenClassification)
    from transformers.trainer_callback import PrinterCallback

    from doctagger import training

    started = time.monotonic()
    say = options.progress or (lambda message: None)
    base = training.resolve_base_model(options.base_model)
    tokenizer = AutoTokenizer.from_pretrained(base)
    if not getattr(tokenizer, "is_fast", False):
        raise TrainingError(f"the tokenizer of {options.base_model or base} is not a fast "
                            "tokenizer, which NER needs for character offsets; pick a base "
                            "model that ships tokenizer.json")
    config = AutoConfig.from_pretrained(base)
    labels = align.bio_labels(task.labels)
    label2id = {label: i for i, label in enumerate(labels)}
    id2label = dict(enumerate(labels))

    hp = training.hyperparameters(options, len(train), NER_DEFAULTS)
    max_length = _window_length(tokenizer, config, [e.text for e in train], options)
    stride = align.stride_for(max_length, tokenizer.num_special_tokens_to_add())
    hp["max_length"] = max_length

    train_windows, train_words = align.encode(tokenizer, [e.text for e in train], max_length,
                                              stride=stride)
    train_cols, inexact = _features(train_windows, train_words, train, label2id)
    if inexact:
        say(f"{inexact} entity spans do not start and end on word boundaries; the model "
            "learns the whole words they touch")
    if len(train_windows) > len(train):
        say(f"{len(train_windows) - len(train)} extra windows: texts longer than "
            f"{max_length} tokens are read in overlapping windows")
    has_eval = bool(evaluation)
    eval_windows, eval_words, eval_cols = [], [], None
    if has_eval:
        eval_windows, eval_words = align.encode(tokenizer, [e.text for e in evaluation],
                                                max_length, stride=stride)
        eval_cols, _ = _features(eval_windows, eval_words, evaluation, label2id)
    train_ds = datasets.Dataset.from_dict(train_cols)
    eval_ds = datasets.Dataset.from_dict(eval_cols) if has_eval else None

    scores_at: dict[int, dict] = {}  # global step -> full held-out scores
    current: dict = {}
    eval_groups = align.group_windows(eval_windows, len(evaluation))

    def compute_metrics(eval_pred):
        preds = eval_pred.predictions
        predicted = []
        for t, numbers in enumerate(eval_groups):
            tags, _ = align.merge_tags(eval_windows, numbers, len(eval_words[t]),
                                       lambda k, pos: id2label.get(int(preds[k][pos]), "O"))
            predicted.append(align.decode(eval_words[t], tags))
        scores = training.ner_scores([e.value or [] for e in evaluation], predicted)
        scores_at[current["trainer"].state.global_step] = scores
        return {k: v for k, v in training.scalar_metrics(scores).items()
                if k in ("precision", "recall", "f1", "macro_f1")}

    def preprocess_logits(logits, labels):
        return logits.argmax(dim=-1)

    device = training.choose_device()
    checkpoints = training.checkpoint_dir(options, output_dir)
    resume = training.resume_checkpoint(options, checkpoints)
    collator = DataCollatorForTokenClassification(
        tokenizer, pad_to_multiple_of=8 if device.startswith("cuda") else None)

    hp["epochs"], eval_steps = schedule(hp, len(train_windows), options)
    every = {}
    if eval_steps is not None:  # checkpoints (and evaluations) every few epochs
        every = {"save_strategy": "steps", "save_steps": eval_steps}
        if has_eval:
            every.update(eval_strategy="steps", eval_steps=eval_steps)
    callbacks = [training.ProgressCallback(options.progress)]
    if has_eval:
        callbacks.append(early_stopping(2))

    def build(batch_size: int, grad_accum: int):
        model = AutoModelForTokenClassification.from_pretrained(
            base, num_labels=len(labels), id2label=id2label, label2id=label2id,
            ignore_mismatched_sizes=True)
        args = training.training_arguments(
            checkpoints, {**hp, "batch_size": batch_size, "grad_accum": grad_accum},
            device=device, has_eval=has_eval, metric="f1", seed=options.seed,
            report_to=options.report_to,
            group_by_length=len(train_windows) >= GROUP_BY_LENGTH_MIN, **every)
        trainer = in_order_trainer()(
            model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
            processing_class=tokenizer, data_collator=collator,
            compute_metrics=compute_metrics if has_eval else None,
            preprocess_logits_for_metrics=preprocess_logits if has_eval else None,
            callbacks=callbacks)
        trainer.remove_callback(PrinterCallback)  # it prints every log dict to stdout
        current["trainer"] = trainer
        return trainer

    shown = options.base_model or "the bundled all-MiniLM-L6-v2"
    say(f"Fine-tuning {shown} for ner on "
        f"{len(train)} texts ({len(train_windows)} windows of up to {max_length} tokens), "
        f"{len(evaluation)} held out, on {device}")
    trainer = training.train_with_oom_fallback(build, hp["batch_size"], resume=resume,
                                               report=options.progress)
    train_seconds = time.monotonic() - started
    metrics: dict = {}
    if has_eval:
        best = trainer.state.best_global_step or trainer.state.global_step
        if best not in scores_at:  # the best epoch ran before a --resume
            trainer.evaluate()
            best = trainer.state.global_step
        metrics = dict(scores_at[best])
    training.save_hf_model(trainer.model, tokenizer, output_dir, labels=labels)
    if training.is_main_process():
        (Path(output_dir) / SETTINGS_FILE).write_text(json.dumps(
            {"max_length": max_length, "stride": stride, "scheme": "BIO",
             "entity_types": list(task.labels)}, indent=2) + "\n", encoding="utf-8")
        if checkpoints == Path(output_dir) / "checkpoints":
            shutil.rmtree(checkpoints, ignore_errors=True)
    best_epoch = None
    if has_eval and trainer.state.best_global_step:
        steps_per_epoch = max(1, trainer.state.max_steps / max(1e-9, float(hp["epochs"])))
        best_epoch = round(trainer.state.best_global_step / steps_per_epoch, 2)
    info = {
        "method": "finetune", "base_model": options.base_model or "all-MiniLM-L6-v2 (bundled)",
        "base_model_path": base, "hyperparameters": hp, "max_length": max_length,
        "stride": stride, "device": device, "train_seconds": round(train_seconds, 2),
        "train_texts": len(train), "train_windows": len(train_windows),
        "eval_texts": len(evaluation), "spans_off_word_boundaries": inexact,
        "batch_size_used": trainer.args.per_device_train_batch_size,
        "gradient_accumulation": trainer.args.gradient_accumulation_steps,
        "epochs_run": round(float(trainer.state.epoch or 0), 2), "best_epoch": best_epoch,
        "labels": labels, "resumed_from": Path(resume).name if resume else None,
        "pipeline_tag": "token-classification", "usage": USAGE,
    }
    return TrainResult(metrics=metrics, info=info)
