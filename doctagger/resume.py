"""``train --resume``: what an interrupted run saved (its options, in ``run.json`` beside
its checkpoints) and how a resumed run uses it: every option not given again is the run's;
one given again must match (except a higher ``--epochs``); with no checkpoint there is
nothing to resume and the run's options neither bind nor carry over."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

from doctagger.errors import TrainingError
from doctagger.tasktypes import Task, TrainOptions

RUN_FILE = "run.json"
#: the options an interrupted run saves and ``--resume`` reuses unless given again
RUN_OPTIONS = ("base_model", "method", "preset", "epochs", "batch_size", "learning_rate",
               "weight_decay", "max_length", "seed", "eval_fraction")
#: of those, the ones a resumed run may change: more epochs train longer
MAY_CHANGE = ("epochs",)


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _shown(value) -> str:
    if value is None:
        return "the default"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _last_checkpoint(folder: Path) -> Path | None:
    found = [(int(p.name.split("-", 1)[1]), p) for p in folder.glob("**/checkpoint-*")
             if p.is_dir() and p.name.split("-", 1)[1].isdigit()]
    return max(found)[1] if found else None


def _trainer_state(checkpoint: Path | None) -> dict:
    """The Trainer's trainer_state.json of a checkpoint ({} when there is none)."""
    path = checkpoint / "trainer_state.json" if checkpoint else None
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path else {}
    except (OSError, ValueError):
        return {}


def explicit_options(options: TrainOptions) -> set[str]:
    """The options that differ from :class:`TrainOptions`' defaults: what a library caller
    "gave" (the CLI knows better, from Click's parameter sources)."""
    defaults = TrainOptions()
    return {key for key in RUN_OPTIONS if getattr(options, key) != getattr(defaults, key)}


def resume_options(task: Task, options: TrainOptions, folder: Path,
                   explicit: set[str] | None = None) -> tuple[TrainOptions, str | None]:
    """``--resume``: the options of the interrupted run whose checkpoints are in ``folder``
    for every option not in ``explicit``, and a line saying what is resumed ("Resuming
    sent: finetune, epoch 2 of 6, --max-length 64 ..."); ``(options, None)`` when there is
    nothing to resume. TrainingError, listing them, when explicit options contradict the
    run (anything but a higher ``--epochs``), since its checkpoints could not continue."""
    marker = folder / RUN_FILE
    if not options.resume or not marker.is_file():
        return options, None
    checkpoint = _last_checkpoint(folder)
    if checkpoint is None:  # interrupted before its first checkpoint (or a head run, which
        return options, None  # writes none): nothing to resume, this run's options stand
    run = json.loads(marker.read_text(encoding="utf-8"))
    saved = run.get("options") or {k: run[k] for k in ("method", "base_model") if k in run}
    explicit = explicit_options(options) if explicit is None else set(explicit)
    state = _trainer_state(checkpoint)
    differ = [key for key in RUN_OPTIONS if key in explicit and key in saved
              and key not in MAY_CHANGE and getattr(options, key) != saved[key]]
    if differ:
        raise TrainingError(
            f"cannot resume {task.name} with "
            + ", ".join(f"{_flag(k)} {_shown(getattr(options, k))} (the interrupted run had "
                        f"{_shown(saved[k])})" for k in differ)
            + f": leave {'it' if len(differ) == 1 else 'them'} out to resume that run, or "
            "train without --resume to start afresh")
    done = state.get("epoch")
    if "epochs" in explicit and done and options.epochs is not None and options.epochs <= done:
        raise TrainingError(f"the interrupted run of {task.name} already trained {done:g} "
                            f"epochs: give --epochs above {done:g} to train longer, or leave "
                            "--epochs out to finish the run as planned")
    resumed = dataclasses.replace(options, **{k: saved[k] for k in RUN_OPTIONS
                                              if k in saved and k not in explicit})
    total = resumed.epochs or state.get("num_train_epochs")
    parts = [str(resumed.method)]
    if done is not None:
        parts.append(f"epoch {done:g}" + (f" of {total:g}" if total else ""))
    parts += [f"{_flag(k)} {_shown(getattr(resumed, k))}" for k in RUN_OPTIONS
              if k not in ("method", "epochs") and getattr(resumed, k) is not None]
    if "epochs" in explicit and saved.get("epochs") != resumed.epochs:
        parts.append(f"--epochs {_shown(resumed.epochs)} (was {_shown(saved.get('epochs'))})")
    if run.get("allow_few"):
        parts.append("--allow-few-examples")
    return resumed, (f"Resuming {task.name}: {', '.join(parts)} (from {checkpoint.name} of "
                     "the interrupted run; options not given again are the run's).")


def resumed_allow_few(folder: Path) -> bool:
    """Whether the interrupted run whose checkpoints are in ``folder`` was started with
    ``--allow-few-examples`` (``--resume`` keeps it, as it keeps the run's options)."""
    try:
        return bool(json.loads((folder / RUN_FILE).read_text(encoding="utf-8"))
                    .get("allow_few"))
    except (OSError, ValueError):
        return False


def _prepare_checkpoints(folder: Path, options: TrainOptions, fingerprint: str,
                         resuming: str | None, say, allow_few: bool = False) -> None:
    """A fresh run clears old checkpoints and saves its options; --resume checks they
    belong to the same data."""
    marker = folder / RUN_FILE
    if options.resume:
        if resuming:
            before = json.loads(marker.read_text(encoding="utf-8"))
            if before.get("data_fingerprint") != fingerprint:
                raise TrainingError("the labels changed since the interrupted run, so its "
                                    "checkpoints do not fit them: train without --resume")
            now = {key: getattr(options, key) for key in RUN_OPTIONS}
            if before.get("options") != now or bool(before.get("allow_few")) != allow_few:
                before.update(options=now, allow_few=bool(allow_few))  # a higher --epochs,
                _write_json(marker, before)  # --allow-few-examples now, an older run.json
            say(resuming)
            return
        say("Nothing to resume (no checkpoint of an interrupted run): training from the start.")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    run = {"data_fingerprint": fingerprint, "method": options.method,
           "base_model": options.base_model, "allow_few": bool(allow_few),
           "options": {key: getattr(options, key) for key in RUN_OPTIONS}}
    _write_json(marker, run)


def _write_json(path: Path, data: dict) -> None:
    """Replace ``path`` atomically: other processes of a run may be reading it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(tmp, path)


