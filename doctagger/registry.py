"""The model registry: one folder and one ``models`` row per trained version.

Each training run makes ``INDEX/models/TASK/vN/``: a plain Hugging Face model folder (what the
task type saved), a ``doctagger.json`` (labels, base model, parameters, data fingerprint,
held-out split, metrics, timings, library versions, hardware) and a ``README.md`` model card.

A version is built in a hidden temporary folder (:func:`new_version_dir`) and only becomes
``vN`` in :func:`register_version`, which renames the folder, inserts the ``models`` row and
activates it in one transaction: an interrupted run leaves no half-registered version.
Versions are numbered per task from 1; when two runs of one task finish together the later
one takes the next free number.
"""
from __future__ import annotations

import json
import os
import platform
import re
import shutil
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from doctagger.errors import InvalidInputError, NotFoundError, TrainingError
from doctagger.index import Index, now
from doctagger.tasktypes import Task

META_FILE = "doctagger.json"
CARD_FILE = "README.md"
FORMAT = 1
LIBRARIES = ("doctagger", "torch", "transformers", "datasets", "accelerate", "evaluate",
             "tokenizers", "safetensors", "scikit-learn", "seqeval", "numpy")
HEADLINE_METRICS = ("macro_f1", "f1", "accuracy")


def _task(index: Index, task: Task | str) -> Task:
    return index.task(task) if isinstance(task, str) else task


def parse_version(value) -> int:
    """3, "3" or "v3" -> 3 (InvalidInputError otherwise)."""
    text = str(value).strip()
    match = re.fullmatch(r"[vV]?(\d+)", text)
    if not match or int(match.group(1)) < 1:
        raise InvalidInputError(f"'{value}' is not a model version: use a number like 3 or v3")
    return int(match.group(1))


def task_models_dir(index: Index, task: Task | str) -> Path:
    """``INDEX/models/TASK``."""
    name = task if isinstance(task, str) else task.name
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise InvalidInputError(f"task name '{name}' cannot name a folder")
    return index.models_dir / name


def _next_version(index: Index, task: Task) -> int:
    highest = index.scalar("select max(version) from models where task_id = ?", [task.id]) or 0
    folder = task_models_dir(index, task)
    if folder.is_dir():
        for child in folder.iterdir():
            match = re.fullmatch(r"v(\d+)", child.name)
            if match and child.is_dir():
                highest = max(highest, int(match.group(1)))
    return highest + 1


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (True when that cannot be told)."""
    if pid == os.getpid() or os.name == "nt":  # os.kill(pid, 0) is no probe on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, but is another user's
        return True
    return True


def _sweep(index: Index, task: Task, folder: Path) -> None:
    """Tidy what killed runs left in ``models/TASK``: hidden build folders of processes
    that are gone are removed; a ``vN`` folder without a ``models`` row (renamed by a run
    killed before its transaction committed) is moved aside to a hidden
    ``.unregistered-vN-TIME`` folder, never deleted. Run under the write lock, so that no
    other run is between its rename and its commit."""
    registered = {r["path"] for r in index.query("select path from models where task_id = ?",
                                                 [task.id])}
    for child in folder.iterdir():
        if not child.is_dir():
            continue
        tmp = re.fullmatch(r"\.tmp-v\d+-(\d+)-.*", child.name)
        if tmp and not pid_alive(int(tmp.group(1))):
            shutil.rmtree(child, ignore_errors=True)
        elif (re.fullmatch(r"v\d+", child.name)
              and child.relative_to(index.path).as_posix() not in registered):
            stamp = now().replace(":", "").replace("+0000", "")
            os.rename(child, folder / f".unregistered-{child.name}-{stamp}")


def new_version_dir(index: Index, task: Task | str) -> tuple[int, Path]:
    """The number the next version will probably get, and an empty hidden folder
    (``models/TASK/.tmp-vN-PID-XXXX``) to build it in. Pass both to
    :func:`register_version`, or :func:`discard` the folder. What killed runs left behind
    is tidied first (:func:`_sweep`)."""
    t = _task(index, task)
    folder = task_models_dir(index, t)
    folder.mkdir(parents=True, exist_ok=True)
    with index.write("tidying the model folder"):
        _sweep(index, t, folder)
        version = _next_version(index, t)
    return version, Path(tempfile.mkdtemp(prefix=f".tmp-v{version}-{os.getpid()}-",
                                          dir=folder))


def discard(tmp_dir) -> None:
    """Remove a version folder that will not be registered."""
    if tmp_dir:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def environment_info(device: str | None = None) -> dict:
    """Library versions and hardware, for doctagger.json and the model card."""
    libraries = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            libraries[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    hardware = {"platform": platform.platform(), "machine": platform.machine(),
                "cpus": os.cpu_count(), "device": device}
    torch = sys.modules.get("torch")  # only when training already imported it
    if torch is not None and (device or "").startswith("cuda") and torch.cuda.is_available():
        hardware["gpu"] = torch.cuda.get_device_name(0)
        hardware["gpus"] = torch.cuda.device_count()
    return {"libraries": libraries, "hardware": hardware}


def register_version(index: Index, task: Task | str, version: int, tmp_dir, *,
                     base_model: str | None, method: str | None, params: dict,
                     data_fingerprint: str | None, metrics: dict, info: dict,
                     split: dict | None = None, activate: bool = True) -> dict:
    """Make the folder built in ``tmp_dir`` version ``vN`` of the task, atomically: write
    doctagger.json and the model card, rename the folder, insert the ``models`` row and
    (``activate``) make it the task's active version, all under the index's write lock. On
    any failure (or Ctrl-C) nothing is registered and ``tmp_dir`` is removed. ``version``
    is the number from :func:`new_version_dir`; the next free number is used if another
    run took it meanwhile. Returns :func:`get_version` of the new version."""
    t = _task(index, task)
    tmp_dir = Path(tmp_dir)
    if not tmp_dir.is_dir():
        raise TrainingError(f"nothing to register: {tmp_dir} does not exist")
    env = environment_info((info or {}).get("device"))
    final: Path | None = None
    committed = False
    try:
        with index.write("registering a model version") as db:
            number = max(int(version), _next_version(index, t))
            final = task_models_dir(index, t) / f"v{number}"
            created = now()
            meta = {
                "doctagger": {"format": FORMAT, "version": env["libraries"].get("doctagger")},
                "task": {"name": t.name, "type": t.type, "labels": list(t.labels),
                         "multi_label": t.multi_label, "level": t.level},
                "version": number,
                "created_at": created,
                "labels": list(t.labels),
                "base_model": base_model,
                "method": method,
                "parameters": params or {},
                "data_fingerprint": data_fingerprint,
                "split": split or {},
                "metrics": metrics or {},
                "info": info or {},
                **env,
            }
            (tmp_dir / META_FILE).write_text(
                json.dumps(meta, indent=2, ensure_ascii=False, default=str) + "\n",
                encoding="utf-8")
            (tmp_dir / CARD_FILE).write_text(model_card(meta), encoding="utf-8")
            os.rename(tmp_dir, final)
            model_id = db["models"].insert({
                "task_id": t.id, "version": number,
                "path": final.relative_to(index.path).as_posix(),
                "base_model": base_model, "method": method,
                "params": json.dumps(params or {}, default=str),
                "data_fingerprint": data_fingerprint,
                "metrics": json.dumps(metrics or {}, default=str),
                "info": json.dumps(info or {}, default=str),
                "created_at": created,
            }).last_pk
            if activate:
                db.execute("update tasks set active_model_id = ? where id = ?", [model_id, t.id])
        committed = True
    finally:
        if not committed:
            if final is not None and final.exists() and not tmp_dir.exists():
                shutil.rmtree(final, ignore_errors=True)
            discard(tmp_dir)
    return get_version(index, t, number)


def _record(index: Index, row: dict, active_id: int | None, task_name: str) -> dict:
    return {
        "task": task_name,
        "version": row["version"],
        "active": row["id"] == active_id,
        "path": str((index.path / row["path"]).resolve()),
        "base_model": row["base_model"],
        "method": row["method"],
        "params": json.loads(row["params"] or "{}"),
        "data_fingerprint": row["data_fingerprint"],
        "metrics": json.loads(row["metrics"] or "{}"),
        "info": json.loads(row["info"] or "{}"),
        "created_at": row["created_at"],
        "id": row["id"],
    }


def headline(metrics: dict) -> tuple[str, float] | None:
    """The one number that sums a version up: macro_f1, else f1, else accuracy."""
    for name in HEADLINE_METRICS:
        if isinstance((metrics or {}).get(name), (int, float)):
            return name, float(metrics[name])
    return None


def list_versions(index: Index, task: Task | str | None = None) -> list[dict]:
    """Every version of ``task`` (or of every task), oldest first."""
    sql = ("select m.*, t.name as task_name, t.active_model_id from models m "
           "join tasks t on t.id = m.task_id")
    params: list = []
    if task is not None:
        sql += " where t.id = ?"
        params.append(_task(index, task).id)
    rows = index.query(sql + " order by t.name, m.version", params)
    return [_record(index, r, r["active_model_id"], r["task_name"]) for r in rows]


def get_version(index: Index, task: Task | str, version=None) -> dict:
    """One version's record (``version`` None: the active one). NotFoundError when the
    task has no such version, or no model yet."""
    t = _task(index, task)
    active_id = index.scalar("select active_model_id from tasks where id = ?", [t.id])
    if version is None:
        row = index.one("select * from models where id = ?", [active_id]) if active_id else None
        if row is None:
            raise NotFoundError(f"task '{t.name}' has no active model yet; train one with "
                                f"'doctagger train {t.name}'")
    else:
        number = parse_version(version)
        row = index.one("select * from models where task_id = ? and version = ?",
                        [t.id, number])
        if row is None:
            known = ", ".join(f"v{r['version']}" for r in index.query(
                "select version from models where task_id = ? order by version", [t.id]))
            raise NotFoundError(f"task '{t.name}' has no model v{number} "
                                f"({'versions: ' + known if known else 'none trained yet'}); "
                                "list them with 'doctagger models'")
    return _record(index, row, active_id, t.name)


def model_dir(index: Index, task: Task | str, version=None) -> Path:
    """The folder of a version (``version`` None: the active one); NotFoundError when
    its files are gone."""
    record = get_version(index, task, version)
    path = Path(record["path"])
    if not path.is_dir():
        raise NotFoundError(f"the files of {record['task']} v{record['version']} are missing "
                            f"({path}); train again, or pick another version with "
                            f"'doctagger models use {record['task']} VERSION'")
    return path


def metadata_of(index: Index, task: Task | str, version=None) -> dict:
    """The version's doctagger.json."""
    path = model_dir(index, task, version) / META_FILE
    if not path.is_file():
        raise NotFoundError(f"{path} is missing; train the task again")
    return json.loads(path.read_text(encoding="utf-8"))


def activate(index: Index, task: Task | str, version) -> dict:
    """Make ``version`` the task's active model (what ``tag`` uses): to roll back, or
    forward again. Returns its record."""
    t = _task(index, task)
    record = get_version(index, t, version)
    model_dir(index, t, record["version"])
    with index.write("activating a model version") as db:
        db.execute("update tasks set active_model_id = ? where id = ?", [record["id"], t.id])
    record["active"] = True
    return record


# -- the model card -----------------------------------------------------------------------
def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def model_card(meta: dict) -> str:
    """README.md of a version: what it is, how good it is on held-out data, how it was
    made, and how to use it with and without doctagger."""
    task, info, metrics = meta["task"], meta.get("info") or {}, meta.get("metrics") or {}
    version = meta["version"]
    lines = ["---"]
    if info.get("pipeline_tag"):  # a transformers folder (fine-tuned); a head is not one
        lines.append("library_name: transformers")
    lines += ["tags:", "- doctagger", f"- {task['type']}"]
    if info.get("pipeline_tag"):
        lines.append(f"pipeline_tag: {info['pipeline_tag']}")
    if meta.get("base_model"):
        lines.append(f"base_model: {json.dumps(str(meta['base_model']))}")
    lines += ["---", "", f"# {task['name']} v{version}", ""]
    kind = "multi-label " if task.get("multi_label") else ""
    lines.append(f"A {kind}{task['type']} model for the doctagger task `{task['name']}` "
                 f"({task['level']} level), trained on {meta['created_at']} "
                 f"with the `{meta.get('method') or 'default'}` method from "
                 f"`{meta.get('base_model') or 'the task type default'}`.")
    lines += ["", "Labels: " + ", ".join(f"`{label}`" for label in meta["labels"]), ""]
    lines += ["## Held-out metrics", ""]
    scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float))
               and not isinstance(v, bool)}
    if scalars:
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in scalars.items()]
        interval = metrics.get("macro_f1_interval")
        if interval and len(interval) == 2:
            lines += ["", f"macro_f1 95% bootstrap interval over the held-out examples: "
                          f"{_fmt(interval[0])}-{_fmt(interval[1])}."]
    else:
        why = ("it was trained with --eval-fraction 0"
               if (meta.get("split") or {}).get("eval_fraction") == 0
               else "too few labelled examples to keep some aside")
        lines.append(f"No held-out evaluation ({why}): its quality is unknown.")
    per = metrics.get("per_label") or metrics.get("per_type") or {}
    if per:
        lines += ["", "| label | precision | recall | f1 | support |", "|---|---|---|---|---|"]
        for label, row in per.items():
            lines.append(f"| {label} | {_fmt(row.get('precision', 0.0))} | "
                         f"{_fmt(row.get('recall', 0.0))} | {_fmt(row.get('f1', 0.0))} | "
                         f"{row.get('support', '')} |")
    split = meta.get("split") or {}
    lines += ["", "## Data", "",
              f"- {split.get('train', '?')} training examples, {split.get('eval', 0)} held "
              f"out (fraction {split.get('eval_fraction', '?')}, seed {split.get('seed', '?')}; "
              "no document on both sides)",
              f"- data fingerprint: `{meta.get('data_fingerprint')}`"]
    counts = (info.get("data") or {}).get("label_counts")
    if counts:
        lines.append("- examples per label: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    for warning in info.get("warnings") or []:
        lines.append(f"- warning: {warning}")
    params = meta.get("parameters") or {}
    if params:
        lines += ["", "## Training", "", "| parameter | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in params.items()]
    timings = {k: v for k, v in info.items() if k.endswith("_seconds")}
    if timings:
        lines += [""] + [f"- {k.replace('_', ' ')}: {v:.1f}" for k, v in timings.items()]
    lines += ["", "## Use", "", "With doctagger:", "", "```",
              f"doctagger tag {task['name']} --model v{version}", "```", ""]
    if info.get("usage"):
        lines += [str(info["usage"]).rstrip(), ""]
    elif info.get("pipeline_tag"):
        lines += ["Without doctagger, it is a plain Hugging Face model folder:", "", "```python",
                  "from transformers import pipeline",
                  f'tagger = pipeline("{info["pipeline_tag"]}", model="PATH/TO/v{version}")',
                  "```", ""]
    libs = meta.get("libraries") or {}
    hardware = meta.get("hardware") or {}
    lines += ["## Environment", "",
              "- " + ", ".join(f"{k} {v}" for k, v in libs.items()),
              "- " + ", ".join(f"{k}: {v}" for k, v in hardware.items() if v is not None), ""]
    return "\n".join(lines)
