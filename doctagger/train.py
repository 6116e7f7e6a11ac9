"""``doctagger train`` as a library function: :func:`train_task`.

labelled examples -> data check -> held-out split -> the task type's ``train`` (in a hidden
folder) -> a registered, active model version. Interrupted (Ctrl-C, an error) nothing is
registered; the Trainer's checkpoints stay in ``models/TASK/.checkpoints`` so that
``--resume`` can continue, and they are removed once a version is registered.

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
from doctagger.splitting import split_examples, split_summary
from doctagger.tasktypes import Example, Task, TrainOptions, TrainResult
from doctagger.training import barrier, broadcast_object, is_main_process, world_size

METHODS = ("auto", "finetune", "head")
CHECKPOINTS = ".checkpoints"
RUN_FILE = "run.json"


def data_fingerprint(examples: list[Example]) -> str:
    """sha256 of the sorted (text, value) pairs: equal for the same labelled data."""
    lines = sorted(json.dumps([ex.text, ex.value], sort_keys=True, ensure_ascii=False)
                   for ex in examples)
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode("utf-8"))
        digest.update(b"\n")
    return "sha256:" + digest.hexdigest()


def check_options(options: TrainOptions) -> None:
    if options.method not in METHODS:
        raise InvalidInputError(f"unknown method '{options.method}': use {', '.join(METHODS)}")
    if not 0 <= options.eval_fraction < 1:
        raise InvalidInputError("--eval-fraction must be at least 0 and below 1 (0.2 keeps "
                                "a fifth of the documents for evaluation)")


def checkpoints_dir(index: Index, task: Task) -> Path:
    """Where the Trainer checkpoints of the task's current run live (for --resume)."""
    return registry.task_models_dir(index, task) / CHECKPOINTS


def _prepare_checkpoints(folder: Path, options: TrainOptions, fingerprint: str,
                         say) -> None:
    """A fresh run clears old checkpoints; --resume checks they belong to the same data."""
    run = {"data_fingerprint": fingerprint, "method": options.method,
           "base_model": options.base_model}
    marker = folder / RUN_FILE
    if options.resume:
        if marker.is_file():
            before = json.loads(marker.read_text(encoding="utf-8"))
            if before.get("data_fingerprint") != fingerprint:
                raise TrainingError("the labels changed since the interrupted run, so its "
                                    "checkpoints do not fit them: train without --resume")
            changed = [f"--{key.replace('_', '-')}" for key in ("method", "base_model")
                       if before.get(key) != run[key]]
            if changed:
                raise TrainingError(f"the interrupted run used another {' and '.join(changed)}"
                                    ": resume with the same options, or train without "
                                    "--resume")
            if any(folder.glob("**/checkpoint-*")):
                say("Resuming from the last checkpoint of the interrupted run.")
                return
        say("Nothing to resume (no checkpoint of an interrupted run): training from the start.")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(run, indent=2), encoding="utf-8")


def _split_record(task: Task, train: list[Example], evaluation: list[Example],
                  options: TrainOptions) -> dict:
    ids = [ex.document_id if task.level == "document" else ex.chunk_id for ex in evaluation]
    return {"seed": options.seed, "eval_fraction": options.eval_fraction,
            **split_summary(train, evaluation),
            "id_kind": "document" if task.level == "document" else "chunk",
            "eval_ids": [i for i in ids if i is not None],
            "eval_text_hashes": sorted({text_hash(ex.text or "") for ex in evaluation})}


def train_task(index: Index, task_name: str, options: TrainOptions | None = None) -> dict:
    """Train a new version of ``task_name`` and make it active; returns a summary (task,
    version, path, method, base_model, metrics, headline, train/eval sizes, warnings,
    seconds). ``options.progress`` receives one-line messages for the user (warnings,
    per-epoch metrics). Raises TrainingError when the data cannot be trained on."""
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
    started = time.monotonic()
    examples = task_examples(index, task)
    report = datacheck.check_data(task, examples)
    for warning in report.warnings:
        say(f"Warning: {warning}")
    datacheck.require_trainable(report)

    train, evaluation = split_examples(examples, options.eval_fraction, options.seed)
    warnings = list(report.warnings)
    if not evaluation:
        why = ("--eval-fraction is 0" if options.eval_fraction == 0 else
               "too few labelled examples or documents to keep some aside without leaving a "
               "label with no training example")
        warning = (f"NO HELD-OUT EVALUATION: {why}. The model is trained on everything and "
                   "its quality is unknown; label more (from several documents) and train again")
        warnings.append(warning)
        say(f"Warning: {warning}")
    else:
        say(f"Training on {len(train)} examples, holding out {len(evaluation)} "
            f"(from {len({e.group for e in evaluation})} documents) for evaluation.")
    fingerprint = data_fingerprint(examples)
    checkpoints = checkpoints_dir(index, task)
    if main:
        _prepare_checkpoints(checkpoints, options, fingerprint, say)
    extra = {**options.extra, "checkpoint_dir": str(checkpoints)}
    if "tensorboard" in options.report_to and not os.environ.get("TENSORBOARD_LOGGING_DIR"):
        # the checkpoint folder goes once the version is registered; the logs must stay
        runs = index.path / "runs" / task.name / time.strftime("%Y%m%d-%H%M%S")
        os.environ["TENSORBOARD_LOGGING_DIR"] = extra["tensorboard_dir"] = str(runs)
        say(f"TensorBoard logs: {runs} (tensorboard --logdir {runs.parent})")
    run_options = dataclasses.replace(options, extra=extra)
    if not main:
        run_options.progress = None
    record = tmp_dir = None
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
            info = dict(result.info or {})
            info.setdefault("train_seconds", round(train_seconds, 2))
            info["total_seconds"] = round(time.monotonic() - started, 2)
            info["processes"] = world_size()
            info["warnings"] = warnings
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
                split=_split_record(task, train, evaluation, options))
            shutil.rmtree(checkpoints, ignore_errors=True)
        record = broadcast_object(record)
    except KeyboardInterrupt:
        if main:
            registry.discard(tmp_dir)
        raise TrainingError(f"training interrupted: no version was registered; 'doctagger "
                            f"train {task.name} --resume' continues from the last "
                            "checkpoint") from None
    except BaseException:
        if main:
            registry.discard(tmp_dir)
        raise
    return summary(record, train, evaluation, warnings)


def summary(record: dict, train: list, evaluation: list, warnings: list[str]) -> dict:
    """The stable result of ``train`` (also its --json output)."""
    best = registry.headline(record["metrics"])
    info = record.get("info") or {}
    return {
        "task": record["task"],
        "version": record["version"],
        "path": record["path"],
        "active": record["active"],
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
