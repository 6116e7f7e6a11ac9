"""Trainer pieces shared by the task types: surviving out-of-memory, the progress bar,
early stopping, class weights and a Trainer with a weighted loss.

``ProgressCallback`` and ``WeightedLossTrainer`` subclass transformers classes, so they are
built on first access (PEP 562 ``__getattr__``) and importing this module costs nothing.
Everything here is re-exported by :mod:`doctagger.training`, where plugins find it.
"""
from __future__ import annotations

import functools
import gc
import sys
from typing import Any, Callable, Sequence

from doctagger.errors import TrainingError

__all__ = ["train_with_oom_fallback", "is_out_of_memory", "free_memory", "ProgressCallback",
           "early_stopping", "standard_callbacks", "class_weights", "WeightedLossTrainer"]


# -- out of memory ------------------------------------------------------------------------
_OOM_MESSAGES = ("out of memory", "can't allocate memory", "cannot allocate memory",
                 "not enough memory")


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA, MPS and CPU out-of-memory errors."""
    if isinstance(exc, MemoryError):
        return True
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if oom is not None and isinstance(exc, oom):
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc).lower() for m in _OOM_MESSAGES)


def free_memory() -> None:
    """Give cached accelerator memory back after a failed attempt."""
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    mps = getattr(torch, "mps", None)
    if mps is not None and getattr(torch.backends, "mps", None) is not None \
            and torch.backends.mps.is_available():
        mps.empty_cache()


def train_with_oom_fallback(build_trainer: Callable[[int, int], Any], batch_size: int, *,
                            resume: bool | str = False, grad_accum: int = 1,
                            report: Callable[[str], None] | None = None):
    """Build a Trainer with ``build_trainer(batch_size, grad_accum)`` and train it; on out of
    memory, halve the batch and double the gradient accumulation (the same effective batch),
    free memory, tell the user and try again. Gives up with a TrainingError when even a
    batch of 1 does not fit. Returns the trainer that finished (its ``args`` hold the batch
    that worked). ``resume``: passed to ``trainer.train(resume_from_checkpoint=...)``.
    """
    say = report or (lambda msg: print(msg, file=sys.stderr))
    batch, accum = max(1, int(batch_size)), max(1, int(grad_accum))
    while True:
        trainer = build_trainer(batch, accum)
        failed = False
        try:
            trainer.train(resume_from_checkpoint=resume or None)
        except BaseException as exc:  # noqa: BLE001 - only out-of-memory is handled
            if not is_out_of_memory(exc):
                raise
            failed = True
        if not failed:
            return trainer
        del trainer
        free_memory()
        if batch <= 1:
            raise TrainingError("out of memory even with a batch of 1: try a shorter "
                                "--max-length, a smaller --base-model, or --method head")
        batch, accum = batch // 2, accum * 2
        say(f"Out of memory: retrying with a batch of {batch} and gradient accumulation "
            f"{accum} (the same effective batch of {batch * accum}).")


# -- callbacks ----------------------------------------------------------------------------
_QUIET_EVAL_KEYS = ("runtime", "samples_per_second", "steps_per_second", "epoch")


def _progress_callback_class():
    from transformers import TrainerCallback

    class ProgressCallback(TrainerCallback):
        """A click progress bar with ETA over the optimisation steps, on a terminal only
        (silent when piped), and one line of held-out metrics per evaluation through
        ``report`` (on the main process only)."""

        def __init__(self, report: Callable[[str], None] | None = None, *,
                     enabled: bool | None = None, label: str = "Training"):
            self.report = report
            self.enabled = sys.stderr.isatty() if enabled is None else enabled
            self.label = label
            self.bar = None
            self.status = ""

        def on_train_begin(self, args, state, control, **kwargs):
            if self.enabled and state.is_world_process_zero and state.max_steps:
                import click

                self.bar = click.progressbar(
                    length=state.max_steps, label=self.label, show_eta=True, show_pos=True,
                    file=sys.stderr, item_show_func=lambda _: self.status or None)
                self.bar.__enter__()
                if state.global_step:
                    self.bar.update(state.global_step)

        def on_step_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.update(max(0, state.global_step - self.bar.pos))

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                self.status = f"loss {float(logs['loss']):.4f}"

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            if not state.is_world_process_zero or not metrics or self.report is None:
                return
            shown = [f"{k.removeprefix('eval_')} {v:.3f}" for k, v in metrics.items()
                     if isinstance(v, (int, float)) and not k.endswith(_QUIET_EVAL_KEYS)]
            if self.bar is not None:
                sys.stderr.write("\r\x1b[K")
            self.report(f"epoch {state.epoch or 0:.0f}: " + ", ".join(shown))

        def on_train_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.__exit__(None, None, None)
                self.bar = None

    ProgressCallback.__module__, ProgressCallback.__qualname__ = __name__, "ProgressCallback"
    return ProgressCallback


def early_stopping(patience: int = 2, threshold: float = 0.0):
    """``transformers.EarlyStoppingCallback``: stop when the eval metric has not improved
    for ``patience`` evaluations. Needs an eval set (load_best_model_at_end)."""
    from transformers import EarlyStoppingCallback

    return EarlyStoppingCallback(early_stopping_patience=patience,
                                 early_stopping_threshold=threshold)


def standard_callbacks(has_eval: bool, report: Callable[[str], None] | None = None,
                       patience: int = 2) -> list:
    """The callbacks every doctagger run wants: the progress bar, and early stopping when
    there is an eval set."""
    callbacks = [_lazy("ProgressCallback")(report)]
    if has_eval:
        callbacks.append(early_stopping(patience))
    return callbacks


# -- class weights ------------------------------------------------------------------------
def class_weights(label_ids: Sequence, n_labels: int, *, ratio: float = 3.0,
                  cap: float = 10.0) -> list[float] | None:
    """Loss weights for imbalanced labels, or None when the labels are balanced enough.

    Single-label (``label_ids`` are class ids): when the most frequent class has at least
    ``ratio`` (3) times the examples of the rarest present class, each class gets
    ``n / (k * count)`` (k = classes present), so every class weighs the same in total;
    capped at ``cap`` (10) so a handful of examples cannot dominate. A class with no
    training example gets 1.

    Multi-label (``label_ids`` are multi-hot rows): a ``pos_weight`` per label,
    ``negatives / positives`` capped at ``cap``, when some label has ``ratio`` times more
    negatives than positives; for ``BCEWithLogitsLoss``.
    """
    rows = list(label_ids)
    if not rows or n_labels < 1:
        return None
    if hasattr(rows[0], "__len__"):  # multi-hot rows
        n = len(rows)
        positives = [sum(1 for r in rows if r[j]) for j in range(n_labels)]
        ratios = [(n - p) / p for p in positives if p]
        if not ratios or max(ratios) < ratio:
            return None
        return [max(1.0 / cap, min(cap, (n - p) / p)) if p else 1.0 for p in positives]
    counts = [0] * n_labels
    for i in rows:
        if 0 <= int(i) < n_labels:
            counts[int(i)] += 1
    present = [c for c in counts if c]
    if len(present) < 2 or max(present) < ratio * min(present):
        return None
    total, k = sum(present), len(present)
    return [min(cap, total / (k * c)) if c else 1.0 for c in counts]


def _weighted_trainer_class():
    import torch
    import torch.nn.functional as F
    from transformers import Trainer
    from transformers.trainer_callback import PrinterCallback

    class WeightedLossTrainer(Trainer):
        """A Trainer whose loss applies ``class_weights``: weighted cross-entropy for
        single-label classification and token classification (labels -100 ignored), and a
        ``pos_weight`` in BCE-with-logits for multi-label (float multi-hot labels, or
        ``multi_label=True``). Without weights it is the plain Trainer, minus the
        PrinterCallback that would print every log dict to stdout."""

        def __init__(self, *args, class_weights: Sequence[float] | None = None,
                     multi_label: bool | None = None, **kwargs):
            super().__init__(*args, **kwargs)
            # with tqdm disabled the Trainer prints every log dict to stdout (PrinterCallback):
            # doctagger's ProgressCallback reports instead, and stdout stays for --json
            self.remove_callback(PrinterCallback)
            self.class_weights = list(class_weights) if class_weights is not None else None
            self.multi_label = multi_label
            if self.class_weights is not None:
                # a per-batch mean: the Trainer divides it by the accumulation steps
                self.loss_is_scaled_for_ga = False

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if self.class_weights is None or "labels" not in inputs:
                return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                            num_items_in_batch=num_items_in_batch)
            inputs = dict(inputs)
            labels = inputs.pop("labels")
            outputs = model(**inputs)
            logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
            weight = torch.tensor(self.class_weights, dtype=torch.float32, device=logits.device)
            multi = self.multi_label
            if multi is None:
                multi = labels.shape == logits.shape and labels.is_floating_point()
            if multi:
                loss = F.binary_cross_entropy_with_logits(
                    logits.float(), labels.to(logits.device).float(), pos_weight=weight)
            else:
                loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                                       labels.to(logits.device).reshape(-1).long(),
                                       weight=weight, ignore_index=-100)
            return (loss, outputs) if return_outputs else loss

    WeightedLossTrainer.__module__ = __name__
    WeightedLossTrainer.__qualname__ = "WeightedLossTrainer"
    return WeightedLossTrainer


_LAZY = {"ProgressCallback": _progress_callback_class,
         "WeightedLossTrainer": _weighted_trainer_class}


@functools.lru_cache(maxsize=None)
def _lazy(name: str):
    return _LAZY[name]()


def __getattr__(name: str):  # PEP 562: classes that subclass transformers, built on use
    if name in _LAZY:
        return _lazy(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

