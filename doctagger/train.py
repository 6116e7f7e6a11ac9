"""``doctagger train`` as a library function: :func:`train_task`.

options checked against the task type -> labelled examples -> data check -> held-out split
-> the task type's ``train`` (in a hidden folder) -> the learning check -> a registered model
version, made active by the rule of :func:`activation` (a version without a held-out score,
or one that learned nothing, never replaces an active version that scores better).
Interrupted (Ctrl-C, an error) nothing is registered; the Trainer's checkpoints and the
run's options stay in ``models/TASK/.checkpoints`` so that ``--resume`` can continue with
the same options, and they are removed once a version is registered.

Under ``torchrun`` / ``accelerate launch`` every process runs this function: all of them
read the same examples and make the same split (it is deterministic), the task type trains
data-parallel, and only the main process creates folders and registers the one version;
the others wait for it and return the same summary.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

from doctagger import datacheck, registry
from doctagger.errors import InvalidInputError, TrainingError
from doctagger.index import Index, text_hash
from doctagger.labels import examples as task_examples
from doctagger.resume import (RUN_FILE, RUN_OPTIONS, _last_checkpoint,  # noqa: F401
                              _prepare_checkpoints, explicit_options, resume_options,
                              resumed_allow_few)
from doctagger.splitting import split_examples, split_summary
from doctagger.tasktypes import Example, Task, TrainOptions, TrainResult
from doctagger.training import barrier, broadcast_object, is_main_process, world_size

METHODS = ("auto", "finetune", "head")
CHECKPOINTS = ".checkpoints"


def data_fingerprint(examples: list[Example]) -> str:
    """sha256 of the sorted (text, value) pairs: equal for the same labelled data."""
    lines = sorted(json.dumps([ex.text, ex.value], sort_keys=True, ensure_ascii=False)
                   for ex in examples)
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode("utf-8"))
        digest.update(b"\n")
    return "sha256:" + digest.hexdigest()


def check_options(options: TrainOptions, task: Task | None = None, task_type=None) -> None:
    """Refuse options that cannot work, before any work: an unknown ``--method`` or one the
    task type does not offer (its ``methods`` attribute; every one of :data:`METHODS` when
    it has none), or an ``--eval-fraction`` outside [0, 1)."""
    if options.method not in METHODS:
        raise InvalidInputError(f"unknown method '{options.method}': use {', '.join(METHODS)}")
    offered = tuple(getattr(task_type, "methods", None) or METHODS)
    if task is not None and options.method not in offered:
        raise InvalidInputError(f"--method {options.method} is not available for {task.type} "
                                f"tasks; use --method {' or '.join(m for m in offered)} (or "
                                "leave it out)")
    if not 0 <= options.eval_fraction < 1:
        raise InvalidInputError("--eval-fraction must be at least 0 and below 1 (0.2 keeps "
                                "a fifth of the documents for evaluation)")


def checkpoints_dir(index: Index, task: Task) -> Path:
    """Where the Trainer checkpoints of the task's current run live (for --resume)."""
    return registry.task_models_dir(index, task) / CHECKPOINTS


# -- which version is active --------------------------------------------------------------
#: reasons of :func:`activation`; the first two make the new version active
ACTIVATING = ("first", "replaced")


def _score(record_or_metrics: dict | None) -> dict | None:
    best = registry.headline(record_or_metrics or {})
    return {"metric": best[0], "value": best[1]} if best else None


def activation(previous: dict | None, metrics: dict, measured: bool,
               learned_nothing: bool) -> str:
    """Whether a new version replaces the task's active one (``previous``, its record, or
    None). The rule, in order:

    - "first": no version is active yet: the new one becomes active, whatever it is;
    - "replaced": the active version has no held-out score either: the new one replaces it;
    - "unmeasured": the new version has no held-out score while the active one has: it is
      registered, and the active one stays;
    - "learned-nothing": the new version learned nothing (:func:`datacheck.check_learning`)
      and the active one scores better on its own held-out set (or by another metric, which
      cannot be compared): the active one stays;
    - "replaced": otherwise (a better or worse score on the current data: labelling more
      changes the held-out set, so scores of different versions are not compared)."""
    if previous is None:
        return "first"
    before = _score(previous.get("metrics"))
    if before is None:
        return "replaced"
    now = _score(metrics) if measured else None
    if now is None:
        return "unmeasured"
    if learned_nothing and (now["metric"] != before["metric"] or now["value"] < before["value"]):
        return "learned-nothing"
    return "replaced"


def lower_than_previous(previous: dict | None, metrics: dict, measured: bool) -> bool:
    """Whether the new version's headline is lower than that of ``previous`` (the version
    it replaces) by the same metric: ``train`` then says so, with the command to go back."""
    before = _score((previous or {}).get("metrics"))
    now = _score(metrics) if measured else None
    return bool(before and now and now["metric"] == before["metric"]
                and now["value"] < before["value"])


def _active(index: Index, task: Task) -> dict | None:
    from doctagger.errors import NotFoundError

    try:
        return registry.get_version(index, task)
    except NotFoundError:
        return None


def _split_record(task: Task, train: list[Example], evaluation: list[Example],
                  options: TrainOptions) -> dict:
    ids = [ex.document_id if task.level == "document" else ex.chunk_id for ex in evaluation]
    return {"seed": options.seed, "eval_fraction": options.eval_fraction,
            **split_summary(train, evaluation),
            "id_kind": "document" if task.level == "document" else "chunk",
            "eval_ids": [i for i in ids if i is not None],
            "eval_text_hashes": sorted({text_hash(ex.text or "") for ex in evaluation})}


def train_task(index: Index, task_name: str, options: TrainOptions | None = None, *,
               explicit: set[str] | None = None, allow_few: bool = False) -> dict:
    """Train a new version of ``task_name`` and register it; returns a summary (task,
    version, path, active, activation, method, base_model, metrics, headline, train/eval
    sizes, warnings, seconds). It becomes active by the rule of :func:`activation`.
    ``options.progress`` receives one-line messages for the user (warnings, per-epoch
    metrics). ``explicit``: the options the user gave (``--resume`` takes the others from
    the interrupted run; None: those that differ from the defaults). ``allow_few``: train
    even with labels below ``datacheck.MIN_TO_TRAIN`` examples, none included (``--resume``
    keeps the interrupted run's). Raises TrainingError when the data cannot be trained on,
    InvalidInputError for options that cannot work."""
    from doctagger.plugins import get_task_type

    options = options or TrainOptions()
    check_options(options)
    main = is_main_process()
    say = (options.progress or (lambda message: None)) if main else (lambda message: None)
    task = index.task(task_name)
    task_type = get_task_type(task.type)
    if not getattr(task_type, "needs_training", True):
        raise TrainingError(f"task type '{task.type}' needs no training: run 'doctagger tag "
                            f"{task.name}' directly")
    checkpoints = checkpoints_dir(index, task)
    options, resuming = resume_options(task, options, checkpoints, explicit)
    allow_few = allow_few or bool(resuming and resumed_allow_few(checkpoints))
    check_options(options, task, task_type)
    started = time.monotonic()
    examples = task_examples(index, task)
    report = datacheck.check_data(task, examples)
    datacheck.require_trainable(report, allow_few=allow_few)
    for warning in report.warnings:
        say(f"Warning: {warning}")
    fingerprint = data_fingerprint(examples)
    if main:
        _prepare_checkpoints(checkpoints, options, fingerprint, resuming, say, allow_few)

    train, evaluation = split_examples(examples, options.eval_fraction, options.seed)
    warnings = list(report.warnings)
    unmeasured = None
    if not evaluation:
        unmeasured = ("--eval-fraction is 0" if options.eval_fraction == 0 else
                      "too few labelled examples or documents to keep some aside without "
                      "leaving a label with no training example")
        warning = (f"NO HELD-OUT EVALUATION: {unmeasured}. The model is trained on everything "
                   "and its quality is unknown; label more (from several documents) and "
                   "train again")
        warnings.append(warning)
        say(f"Warning: {warning}")
    else:
        say(f"Training on {len(train)} examples, holding out {len(evaluation)} "
            f"(from {len({e.group for e in evaluation})} documents) for evaluation.")
    extra = {**options.extra, "checkpoint_dir": str(checkpoints)}
    if "tensorboard" in options.report_to and not os.environ.get("TENSORBOARD_LOGGING_DIR"):
        # the checkpoint folder goes once the version is registered; the logs must stay
        runs = index.path / "runs" / task.name / time.strftime("%Y%m%d-%H%M%S")
        os.environ["TENSORBOARD_LOGGING_DIR"] = extra["tensorboard_dir"] = str(runs)
        say(f"TensorBoard logs: {runs} (tensorboard --logdir {runs.parent})")
    run_options = dataclasses.replace(options, extra=extra)
    if not main:
        run_options.progress = None
    kind = ("spans" if getattr(task_type, "value_kind", None) == "spans"
            else datacheck.kind_of(task, examples))
    outcome = tmp_dir = None
    try:
        planned = registry.new_version_dir(index, task) if main else None
        tmp_dir = planned[1] if planned else None
        version, tmp_dir = broadcast_object((planned[0], str(planned[1])) if planned else None)
        tmp_dir = Path(tmp_dir)
        train_started = time.monotonic()
        result = task_type.train(task, train, evaluation, run_options, tmp_dir)
        if not isinstance(result, TrainResult):
            raise TrainingError(f"task type '{task.type}' returned {type(result).__name__} "
                                "from train(), not a TrainResult; report it to its plugin")
        train_seconds = time.monotonic() - train_started
        barrier()
        if main:
            learned, learned_nothing = (datacheck.check_learning(task, result.metrics, kind)
                                        if evaluation else ([], False))
            for warning in learned:
                say(f"Warning: {warning}")
            warnings += learned
            previous = _active(index, task)
            reason = activation(previous, result.metrics or {}, bool(evaluation),
                                learned_nothing)
            info = dict(result.info or {})
            info.setdefault("train_seconds", round(train_seconds, 2))
            info["total_seconds"] = round(time.monotonic() - started, 2)
            info["processes"] = world_size()
            info["warnings"] = warnings
            info["learned_nothing"] = learned_nothing
            info["data"] = {k: v for k, v in report.as_dict().items() if k != "warnings"}
            info["options"] = {f.name: getattr(options, f.name)
                               for f in dataclasses.fields(options)
                               if f.name not in ("progress", "extra")}
            record = registry.register_version(
                index, task, version, tmp_dir,
                base_model=info.get("base_model") or options.base_model,
                method=info.get("method") or options.method,
                params=info.get("hyperparameters") or {},
                data_fingerprint=fingerprint, metrics=result.metrics or {}, info=info,
                split=_split_record(task, train, evaluation, options),
                activate=reason in ACTIVATING)
            shutil.rmtree(checkpoints, ignore_errors=True)
            lower = reason == "replaced" and lower_than_previous(
                previous, result.metrics or {}, bool(evaluation))
            outcome = {"record": record, "warnings": warnings, "activation": {
                "reason": reason, "learned_nothing": learned_nothing,
                "unmeasured": unmeasured,
                "previous": {"version": previous["version"],
                             "headline": _score(previous.get("metrics"))} if previous else None,
                "lower_than_previous": lower,
                "go_back": (f"doctagger models use {task.name} {previous['version']}"
                            if lower else None)}}
        outcome = broadcast_object(outcome)
    except KeyboardInterrupt:
        if main:
            registry.discard(tmp_dir)
        resumable = _last_checkpoint(checkpoints) is not None
        raise TrainingError(
            "training interrupted: no version was registered; " + (
                f"'doctagger train {task.name} --resume' continues from the last checkpoint"
                if resumable else f"it stopped before its first checkpoint, so 'doctagger "
                f"train {task.name}' starts it again")) from None
    except BaseException:
        if main:
            registry.discard(tmp_dir)
        raise
    return summary(outcome["record"], train, evaluation, outcome["warnings"],
                   outcome["activation"])


def summary(record: dict, train: list, evaluation: list, warnings: list[str],
            activation: dict | None = None) -> dict:
    """The stable result of ``train`` (also its --json output). ``activation``: ``reason``
    (see :func:`activation`), ``learned_nothing``, ``unmeasured`` (why there is no held-out
    score, or None), ``previous`` (the version active before, ``{version, headline}``,
    or None), ``lower_than_previous`` (it replaced a version whose headline was higher, by
    the same metric, on that version's own held-out set) and ``go_back`` (then the command
    that makes the previous version active again, else None)."""
    best = registry.headline(record["metrics"])
    info = record.get("info") or {}
    return {
        "task": record["task"],
        "version": record["version"],
        "path": record["path"],
        "active": record["active"],
        "activation": activation,
        "method": record["method"],
        "base_model": record["base_model"],
        "metrics": record["metrics"],
        "headline": {"metric": best[0], "value": best[1]} if best else None,
        "train_examples": len(train),
        "eval_examples": len(evaluation),
        "warnings": warnings,
        "device": info.get("device"),
        "seconds": info.get("total_seconds"),
    }
