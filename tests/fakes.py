"""Fake task types and corpus helpers shared by tests, usable in-process and in a subprocess.

In-process: the ``fakes`` fixture (tests/conftest.py) registers ``FakePlugin()`` alone and
empties the call records; or register it with the ``register_plugin`` fixture (and set
``DOCTAGGER_LOAD_PLUGINS=""`` so that no installed plugin loads).

In a subprocess (kill tests, concurrency tests): run the real CLI with the fakes registered,

    [sys.executable, "-m", "tests.fakes", "tag", "topic", ...]   (cwd or PYTHONPATH = the repo)

``DOCTAGGER_FAKE_SLEEP`` (seconds) makes every predict batch and every training step
sleep that long, so that a run lasts long enough to be killed or overlapped.

Task types:
- ``kwclass``: classification by keyword counts (a label's name in the text); trainable:
  ``train`` writes a small safetensors "model" in a few slow steps, as a real task type
  writes its files over a while. ``KeywordClassification.loaded`` records the model
  folders it loads and ``KeywordClassification.calls`` every predict batch of the loaded
  predictors (``{"texts": [...], "inference": torch inference mode on?}``);
- ``capsner``: rule-based NER (capitalised words), needs no training.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path

from doctagger.errors import InvalidLabelError
from doctagger.hookspecs import hookimpl
from doctagger.hashing import now, text_hash
from doctagger.tasktypes import Prediction, TaskType, TrainResult

SLEEP_ENV = "DOCTAGGER_FAKE_SLEEP"
TRAIN_STEPS = 5


def _sleep() -> None:
    seconds = float(os.environ.get(SLEEP_ENV) or 0)
    if seconds:
        time.sleep(seconds)


class KeywordPredictor:
    """Scores each label by how often its name occurs in the text; a text that names
    none is "other". Each batch is appended to ``calls`` with whether it ran under torch's
    inference mode."""

    def __init__(self, task, calls=None):
        self.task = task
        self.calls = calls if calls is not None else []

    def predict(self, texts):
        _sleep()
        torch = sys.modules.get("torch")  # not imported: inference mode cannot be on
        self.calls.append({"texts": list(texts),
                           "inference": bool(torch and torch.is_inference_mode_enabled())})
        out = []
        for text in texts:
            low = text.casefold()
            raw = {lab: low.count(lab.casefold()) + 0.1 for lab in self.task.labels}
            total = sum(raw.values())
            scores = {lab: v / total for lab, v in raw.items()}
            best = max(self.task.labels, key=lambda lab: (  # ties: "other", else the first
                scores[lab], lab == "other", -self.task.labels.index(lab)))
            if self.task.multi_label:
                value = sorted(lab for lab, p in scores.items() if p >= 0.3)
                score = min((scores[lab] for lab in value), default=1 - max(scores.values()))
            else:
                value, score = best, scores[best]
            out.append(Prediction(value, score, scores))
        return out


class KeywordClassification(TaskType):
    name = "kwclass"
    value_kind = "class"
    calls: list = []  # every predict batch of the predictors that load() returned
    loaded: list = []  # the model folders load() was given

    def check_labels(self, labels, *, multi_label, level):
        pass

    def validate(self, task, value):
        names = value if task.multi_label else [value]
        if task.multi_label and not isinstance(value, list):
            raise InvalidLabelError("a multi-label value is a list of labels")
        for n in names:
            if n not in task.labels:
                raise InvalidLabelError(f"unknown label '{n}'")
        return sorted(value) if task.multi_label else value

    def train(self, task, train, evaluation, options, output_dir):
        """Write the "model" over a few slow steps: config first, weights last."""
        from safetensors.numpy import save_file
        import numpy as np

        output_dir = Path(output_dir)
        (output_dir / "config.json").write_text(json.dumps({"labels": task.labels}))
        counts = np.zeros(len(task.labels), dtype=np.float32)
        for step in range(TRAIN_STEPS):
            _sleep()
            for ex in train[step::TRAIN_STEPS]:
                counts[task.labels.index(ex.value)] += 1
        save_file({"counts": counts}, str(output_dir / "model.safetensors"))
        correct = sum(1 for p, ex in zip(KeywordPredictor(task).predict(
            [e.text for e in evaluation]), evaluation) if p.value == ex.value)
        accuracy = correct / len(evaluation) if evaluation else 0.0
        return TrainResult(metrics={"accuracy": accuracy},
                           info={"method": "keywords", "base_model": "none"})

    def load(self, task, model_dir):
        KeywordClassification.loaded.append(Path(model_dir))
        return KeywordPredictor(task, KeywordClassification.calls)

    def evaluate(self, task, examples, predictions):
        correct = sum(1 for ex, p in zip(examples, predictions) if ex.value == p.value)
        return {"accuracy": correct / len(examples) if examples else 0.0}


class CapsPredictor:
    """'X Corp' is an ORG (0.9); any other capitalised word after the first is a PER (0.6)."""

    def predict(self, texts):
        _sleep()
        out = []
        for text in texts:
            spans = []
            for m in re.finditer(r"[A-Z][a-z]+ Corp|\b[A-Z][a-z]+", text):
                if m.start() == 0 or any(s["start"] <= m.start() < s["end"] for s in spans):
                    continue
                org = m.group().endswith(" Corp")
                spans.append({"start": m.start(), "end": m.end(),
                              "label": "ORG" if org else "PER", "score": 0.9 if org else 0.6})
            out.append(Prediction(spans, min([s["score"] for s in spans], default=1.0)))
        return out


class CapsNER(TaskType):
    name = "capsner"
    value_kind = "spans"
    levels = ("chunk",)
    needs_training = False

    def check_labels(self, labels, *, multi_label, level):
        pass

    def validate(self, task, value):
        if not isinstance(value, list):
            raise InvalidLabelError("NER values are lists of spans")
        for span in value:
            if set(span) != {"start", "end", "label"}:
                raise InvalidLabelError("a span has start, end and label")
            if span["label"] not in task.labels:
                raise InvalidLabelError(f"unknown entity label '{span['label']}'")
        return sorted(value, key=lambda s: s["start"])

    def load(self, task, model_dir):
        return CapsPredictor()


class FakePlugin:
    @hookimpl
    def register_task_types(self, register):
        register(KeywordClassification)
        register(CapsNER)


# -- corpus helpers -----------------------------------------------------------------------
def add_document(index, path, pages, *, source="file", title=None, sha256=None, fmt="pdf"):
    """A document written straight into the index. ``pages`` is a list of pages, each a
    list of chunk texts. Returns (document id, chunk ids)."""
    stamp = now()
    chunk_ids = []
    with index.write() as db:
        doc_id = db["documents"].insert({
            "path": str(path), "sha256": sha256 or hashlib.sha256(str(path).encode()).hexdigest(),
            "source": source, "status": "ok", "pages": len(pages), "format": fmt,
            "title": title, "chunk_count": sum(len(p) for p in pages),
            "ingested_at": stamp}).last_pk
        seq = 0
        for page_no, chunks in enumerate(pages, 1):
            db["pages"].insert({"document_id": doc_id, "page": page_no,
                                "text": "\n".join(chunks)})
            for text in chunks:
                chunk_ids.append(db["chunks"].insert({
                    "document_id": doc_id, "seq": seq, "text": text, "page": page_no,
                    "page_end": page_no, "text_hash": text_hash(text)}).last_pk)
                seq += 1
    return doc_id, chunk_ids


WORDS = ("cardio neuro other heart brain patient trial dose study result method finding "
         "ward scan blood nerve").split()


def add_corpus(index, documents: int, chunks: int, *, seed: int = 11,
               prefix: str = "/docs/doc") -> list[int]:
    """``documents`` documents of ``chunks`` chunks each (two pages), written in bulk; chunk
    texts vary in length and mention the labels' names. Returns the document ids."""
    import random

    rng = random.Random(seed)
    stamp = now()
    ids = []
    with index.write() as db:
        conn = db.conn
        for d in range(documents):
            texts = [f"doc {d} chunk {c} " + " ".join(rng.choice(WORDS) for _ in range(
                rng.randint(3, 40))) for c in range(chunks)]
            path = f"{prefix}{d:04d}.pdf"
            doc_id = conn.execute(
                "insert into documents (path, sha256, source, status, pages, format, "
                "chunk_count, ingested_at) values (?, ?, 'file', 'ok', 2, 'pdf', ?, ?)",
                [path, hashlib.sha256(path.encode()).hexdigest(), chunks, stamp]).lastrowid
            half = chunks // 2
            conn.executemany("insert into pages (document_id, page, text) values (?, ?, ?)",
                             [(doc_id, 1, "\n".join(texts[:half])),
                              (doc_id, 2, "\n".join(texts[half:]))])
            conn.executemany(
                "insert into chunks (document_id, seq, text, page, page_end, text_hash) "
                "values (?, ?, ?, ?, ?, ?)",
                [(doc_id, c, t, 1 if c < half else 2, 1 if c < half else 2, text_hash(t))
                 for c, t in enumerate(texts)])
            ids.append(doc_id)
    return ids


def add_model(index, task_name, version=1, *, activate=True, method="finetune"):
    """A model version row and its folder (the fakes need no files), activated like the
    registry does."""
    task = index.task_row(task_name)
    rel = f"models/{task_name}/v{version}"
    (index.path / rel).mkdir(parents=True, exist_ok=True)
    (index.path / rel / "doctagger.json").write_text(json.dumps({"version": version}))
    with index.write() as db:
        model_id = db["models"].insert({
            "task_id": task["id"], "version": version, "path": rel, "base_model": "fake",
            "method": method, "params": "{}", "metrics": "{}", "info": "{}",
            "created_at": now()}).last_pk
        if activate:
            db.execute("update tasks set active_model_id = ? where id = ?", [model_id, task["id"]])
    return model_id


def create_task(index, name, type_="kwclass", labels=("cardio", "neuro", "other"), **kw):
    from doctagger.tasks import create_task as create

    return create(index, name, type=type_, labels=list(labels), **kw)


CARDIO = "The cardio ward saw cardio patients with cardio symptoms."
NEURO = "Neuro findings: neuro exam and a neuro consult."
OTHER = "Other business and other matters of other kinds."


def make_pdf(path: Path, pages: list[list[str]], metadata: dict | None = None) -> Path:
    """A real PDF with each page's texts as lines."""
    import pymupdf

    doc = pymupdf.open()
    if metadata:
        doc.set_metadata(metadata)
    for lines in pages:
        page = doc.new_page()
        y = 72
        for text in lines:
            page.insert_text((72, y), text, fontsize=10)
            y += 20
    path.parent.mkdir(parents=True, exist_ok=True)
    doc.save(str(path))
    doc.close()
    return path


def add_pdf(index, path: Path, pages, **kw):
    """A real PDF (``make_pdf``) and its document in the index, with the file's sha256.
    Returns (document id, chunk ids)."""
    make_pdf(path, pages)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    return add_document(index, path.resolve(), pages, sha256=sha, **kw)


# -- the tasks and import/export tests' fakes: label checks only, no training ------------
class FakeClassification:
    """``fakeclass``: chunk or document classification; reserves the label 'forbidden'."""
    name = "fakeclass"
    value_kind = "class"
    levels = ("chunk", "document")

    def check_labels(self, labels, *, multi_label, level):
        if "forbidden" in labels:
            raise InvalidLabelError("the label 'forbidden' is reserved; choose another name")

    def validate(self, task, value):
        """``kwclass``'s checks; the message for an unknown label also lists the labels."""
        try:
            return KeywordClassification.validate(self, task, value)
        except InvalidLabelError as e:
            if not str(e).startswith("unknown label "):
                raise
            raise InvalidLabelError(f"{e}; the task's labels are "
                                    f"{', '.join(task.labels)}") from None


class FakeNER:
    """``fakener``: chunk-level spans; unlike ``capsner`` a span may carry other keys."""
    name = "fakener"
    value_kind = "spans"
    levels = ("chunk",)
    check_labels = CapsNER.check_labels  # any labels

    def validate(self, task, value):
        """``capsner``'s checks on each span's start, end and label; other keys are kept."""
        core = value if not isinstance(value, list) else [
            {key: span[key] for key in ("start", "end", "label")} for span in value]
        CapsNER.validate(self, task, core)
        return sorted(value, key=lambda s: s["start"])


class FakeClassNERPlugin:
    """Registers ``fakeclass`` and ``fakener`` only."""

    @hookimpl
    def register_task_types(self, register):
        register(FakeClassification)
        register(FakeNER)


def add_text_document(index, path, texts, *, source="file", sha256=None):
    """A one-page "txt" document with one chunk per text (``add_document`` with one
    page). Returns (document id, chunk ids)."""
    return add_document(index, path, [texts], source=source, fmt="txt",
                        sha256=sha256 or text_hash(str(path)) * 2)


def main(argv=None) -> None:
    """The doctagger CLI with the fake task types registered (for subprocess tests)."""
    from doctagger import plugins
    from doctagger.cli import main as cli_main

    plugins.register_plugin(FakePlugin(), "fakes")
    cli_main(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
