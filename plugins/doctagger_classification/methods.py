"""Training: the "head", "finetune" and "auto" methods, and the held-out evaluation they
share.

``auto`` (the default), the rule:
1. always train the head (a frozen encoder and logistic regression: seconds);
2. also fine-tune: document-level tasks always; chunk-level ones when there is enough
   data, at least :data:`FINETUNE_MIN_TOTAL` training examples or at least
   :data:`FINETUNE_MIN_PER_LABEL` of every label (:func:`enough_for_finetune`);
3. ... but only when fine-tuning fits the time budget: its time is estimated from the
   speed at which the head's encoder read the training texts (:func:`finetune_estimate`)
   and compared with :func:`time_budget` (it grows with the data; ``--time-budget``, or
   ``TrainOptions.extra["time_budget"]``, sets it). A skipped candidate is said and
   recorded with its estimate;
4. keep whichever scores the higher held-out macro-F1 (a tie keeps the head: it is
   cheaper). Without a held-out split there is nothing to compare: fine-tune when step 2
   says so, else the head.

Document-level tasks are evaluated per document on the mean of their chunks'
probabilities, as ``tag``'s roll-up does. What they learn from (measured on the medical
abstracts as documents of 2-sentence chunks, head method, 160 training documents: the whole
text 0.587 macro-F1 per document, chunks inheriting the label 0.545; docs/classification.md):
the head learns from the whole document (as the reading cross-validation chooses: its
first 256 tokens, or every 128-token window averaged); fine-tuning learns from the whole
document's first :data:`finetune.DOCUMENT_MAX_LENGTH` tokens, where its title and opening
clauses say what it is (on the contract PDFs: 0.962 macro-F1 on unseen contracts, where
chunks inheriting the document's label scored 0.54), and predicts a document from them.
``TrainOptions.extra["document_input"] = "chunks" | "whole"`` overrides both.

Multi-label thresholds (one per label, :mod:`multilabel`) are tuned on training data only,
so that the held-out scores ``train``, ``eval`` and ``models`` report are not measured on
the data the thresholds were fitted to: the head on out-of-fold predictions of the
training split (:func:`head.out_of_fold`, grouped by document: no extra training, no data
lost); fine-tuning on :data:`TUNE_FRACTION` of the training split held back from the
Trainer (cross-validating a fine-tune would multiply its cost; tuning on the held-out split
after measuring would leave ``eval``, which reads the saved thresholds, optimistic).
"""
from __future__ import annotations

import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from doctagger.errors import InvalidInputError, TrainingError
from doctagger.hashing import text_hash
from doctagger.tasktypes import Example, Task, TrainOptions, TrainResult
from doctagger_classification import lexical, multilabel, values

METHODS = ("auto", "finetune", "head")
#: Measured on the medical abstracts (docs/classification.md): with 100 examples the head
#: beat fine-tuning on held-out macro-F1 (0.479 vs 0.443) in a tenth of the time; below a
#: thousand examples fine-tuning costs more than a third of the guide recipe's time.
FINETUNE_MIN_TOTAL = 1000
FINETUNE_MIN_PER_LABEL = 200
#: how document-level tasks learn, per method: "chunks" (inherit the document's label) or
#: "whole" (the document as one text)
DOCUMENT_INPUT = {"head": "whole", "finetune": "whole"}
BUNDLED = "all-MiniLM-L6-v2 (bundled)"
#: multi-label fine-tuning: the share of the training split (whole documents, stratified)
#: held back from the Trainer to tune the per-label thresholds on
TUNE_FRACTION = 0.1
MULTI_LABEL_USAGE = """\
Without doctagger, it is a plain Hugging Face model folder (multi-label: one sigmoid per
label). Its per-label thresholds, tuned on a slice of the training data held back from
training, are in `thresholds.json` (and in `config.json` as `doctagger_thresholds`):

```python
import json
from transformers import pipeline

tagger = pipeline("text-classification", model="MODEL_DIR", top_k=None)
thresholds = json.load(open("MODEL_DIR/thresholds.json"))["thresholds"]
scores = tagger(["some text"])[0]
print([s["label"] for s in scores if s["score"] >= thresholds[s["label"]]])
```
"""
#: the time budget of fine-tuning in ``auto`` (seconds): this, plus BUDGET_PER_EXAMPLE for
#: each training example. Measured on 2 cores (bench/quality, docs/classification.md):
#: fine-tuning gained 6.5 points on 1,659 short financial sentences (estimated 250 s) and
#: lost 1 point on 2,057 medical abstracts in 1,786 s, so a beginner's CPU run is not left
#: to take half an hour for a model it might not keep
BUDGET_SECONDS = 120.0
BUDGET_PER_EXAMPLE = 0.3
#: a training step reads a token about this many times as dearly as the head's frozen
#: forward pass does (forward and backward through every layer, the optimiser's update).
#: Measured on 2 cores: one epoch over 400 financial sentences or medical abstracts took
#: 4.5 and 4.4 times the head's embedding time per token (model loading included); on the
#: contract PDFs, whose head speed is measured at 256 tokens and whose fine-tune reads 128,
#: 2.6 per epoch. So the estimate errs long.
TRAIN_COST_FACTOR = 4.0
DOCUMENT_USAGE = """\
Without doctagger, it is a plain Hugging Face model folder. It was fine-tuned on each
document's beginning (its first `max_length` tokens, which the saved tokenizer's
`model_max_length` holds), so give it a document's whole text and let it truncate:

```python
from transformers import pipeline

tagger = pipeline("text-classification", model="MODEL_DIR")
print(tagger(["the document's text, its pages joined by newlines"], truncation=True))
```
"""
AUTO_RULE = (f"head always; fine-tune too (document-level tasks: always; chunk-level: when "
             f"there are >= {FINETUNE_MIN_TOTAL} training examples or >= "
             f"{FINETUNE_MIN_PER_LABEL} of every label) when its estimated time "
             f"fits the time budget ({BUDGET_SECONDS:g} s + {BUDGET_PER_EXAMPLE:g} s a "
             "training example unless --time-budget says otherwise); keep the higher "
             "held-out macro-F1 (a tie keeps the head)")


def time_budget(options, n_examples: int) -> float:
    """Seconds ``auto`` may give a fine-tuning candidate: ``extra["time_budget"]`` when
    given (``--time-budget``), else :data:`BUDGET_SECONDS` + :data:`BUDGET_PER_EXAMPLE` a
    training example."""
    given = (options.extra or {}).get("time_budget")
    if given is not None:
        try:
            value = float(given)
        except (TypeError, ValueError):
            raise InvalidInputError(f"time budget must be a number of seconds, not '{given}'")
        if value < 0:
            raise InvalidInputError("time budget must be 0 seconds or more")
        return value
    return BUDGET_SECONDS + BUDGET_PER_EXAMPLE * n_examples


def finetune_estimate(token_counts, eval_token_counts, tokens_per_second: float,
                      epochs: float, max_length: int) -> float:
    """Seconds a fine-tune should take: every epoch trains on the training texts (cut at
    ``max_length`` tokens) at :data:`TRAIN_COST_FACTOR` times the cost of the frozen
    forward pass the head measured (``tokens_per_second``), and reads the held-out texts
    once."""
    train_tokens = sum(min(int(n), max_length) for n in token_counts)
    eval_tokens = sum(min(int(n), max_length) for n in eval_token_counts)
    rate = max(float(tokens_per_second), 1e-6)
    return float(epochs) * (TRAIN_COST_FACTOR * train_tokens + eval_tokens) / rate


def _parts(task: Task, example: Example, how: str) -> list[str]:
    if task.level == "document" and how == "chunks" and example.parts:
        parts = [p for p in example.parts if p and p.strip()]
        if parts:
            return parts
    return [example.text or ""]


def expand(task: Task, examples: list[Example], how: str = "chunks"):
    """(texts, values, owner): training texts (chunks inherit their document's value) and
    the index of the example each came from."""
    texts, vals, owner = [], [], []
    for i, example in enumerate(examples):
        for part in _parts(task, example, how):
            texts.append(part)
            vals.append(example.value)
            owner.append(i)
    return texts, vals, owner


def enough_for_finetune(task: Task, examples: list[Example]) -> bool:
    """Whether ``auto`` should try fine-tuning (if it fits the time budget): document-level
    tasks always (a document's beginning, fine-tuned on, beat the head on 108 contracts:
    0.962 against 0.840 macro-F1 on unseen ones), chunk-level ones from
    :data:`FINETUNE_MIN_TOTAL` examples or :data:`FINETUNE_MIN_PER_LABEL` of every label
    (below, the head won on the medical abstracts)."""
    if task.level == "document":
        return True
    if len(examples) >= FINETUNE_MIN_TOTAL:
        return True
    counts = Counter(label for e in examples
                     for label in (e.value if isinstance(e.value, list) else [e.value]))
    return all(counts.get(label, 0) >= FINETUNE_MIN_PER_LABEL for label in task.labels)


def _whole_texts(examples: list[Example]) -> list[tuple[str, object, object]]:
    """(text, value, group) for each document whose labelled chunks (two or more) all carry
    one label: its chunks joined in order, one more training text beside them (the head of
    a chunk-level task; ``extra["whole_texts"] = False`` turns it off). An imported long
    text is cut into chunks, but ``eval --file`` and ``tag`` read a long text whole: on 20
    medical abstracts a class the head scored 0.546 on unseen abstracts from chunks alone,
    0.558 with the whole texts too (docs/classification.md)."""
    by_group: dict = {}
    for e in examples:
        if e.group is not None:
            by_group.setdefault(e.group, []).append(e)
    out = []
    for group, members in by_group.items():
        if len(members) > 1 and len({str(m.value) for m in members}) == 1:
            members = sorted(members, key=lambda m: m.chunk_id or 0)
            out.append(("\n".join(m.text or "" for m in members), members[0].value, group))
    return out


def _group(example: Example):
    """What keeps examples together in cross-validation: their document, else their text."""
    return example.group if example.group is not None else text_hash(example.text or "")


def _probabilities(task: Task, predictor, examples: list[Example], how: str = "chunks"):
    """(n, labels) numpy probabilities, per document for document-level tasks (the mean of
    its chunks', as ``tag`` rolls them up)."""
    return predictor.document_probabilities(
        [_parts(task, e, how) for e in examples]).numpy()


def _multi_hot(labels: list[str], examples: list[Example]):
    import numpy as np

    return np.asarray([[1.0 if label in (e.value or []) else 0.0 for label in labels]
                       for e in examples])


def held_out_scores(task: Task, predictor, evaluation: list[Example],
                    how: str = "chunks") -> dict:
    """Held-out metrics of a trained predictor (document-level tasks: per document, on the
    mean of its chunks' probabilities, as ``tag`` rolls them up). Multi-label decisions use
    the thresholds the model was saved with, tuned before the held-out split was seen."""
    from doctagger.training import classification_scores

    labels = predictor.labels
    mean = _probabilities(task, predictor, evaluation, how)
    gold = [e.value for e in evaluation]
    if task.multi_label:
        thresholds = predictor.thresholds
        pred = [multilabel.decide(row, labels, thresholds) for row in mean]
    else:
        pred = [labels[int(j)] for j in mean.argmax(axis=1)]
    scores = classification_scores(gold, pred, labels, task.multi_label)
    if not task.multi_label:
        scores.update(values.honesty(gold, pred, [float(row.max()) for row in mean], labels))
    scores["evaluated_on"] = "documents" if task.level == "document" else "chunks"
    return scores


#: seconds a head may spend embedding its training texts once more to try another reading
#: (head.READINGS): this, plus READING_SECONDS_PER_TEXT for each training text
READING_BUDGET_SECONDS = 120.0
READING_SECONDS_PER_TEXT = 0.5


def _readings(options) -> list[tuple[str, int]]:
    """The readings to try: the user's --max-length alone (as windows), else every one."""
    from doctagger_classification import head

    if options.max_length:
        return [("windows", int(options.max_length))]
    return list(head.READINGS)


def _token_counts(tokenizer, texts) -> list[int]:
    return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=True,
                                          truncation=False)["input_ids"]]


def _train_head(task, train_texts, train_values, options, folder: Path, base: str, say,
                groups=None, whole_documents: bool = False):
    """The head, with the reading (head.READINGS) and C the user's data choose by
    cross-validated macro-F1 (single-label; multi-label keeps the first reading). A reading
    whose embedding would pass the time budget is skipped and said so."""
    import numpy as np

    from doctagger_classification import head
    from doctagger_classification.encoder import Encoder

    started = time.perf_counter()
    targets = values.encode(task, train_values)
    readings = _readings(options)
    if task.multi_label:
        readings = readings[:1]
    budget = READING_BUDGET_SECONDS + READING_SECONDS_PER_TEXT * len(train_texts)
    tried: dict[str, dict] = {}
    best = None
    rate = None  # tokens a second, measured on the first reading
    counts = None
    for long_texts, max_length in readings:
        name = f"{'first' if long_texts == 'truncate' else 'windows'}-{max_length}"
        encoder = Encoder(base, max_length=max_length, long_texts=long_texts)
        if counts is None:
            counts = _token_counts(encoder.tokenizer, train_texts)
        cap = encoder.max_length if long_texts == "truncate" else None
        tokens = sum(min(n, cap) if cap else n for n in counts)
        if best is not None and max(counts, default=0) <= min(
                encoder.max_length, best["encoder"].max_length):
            # every text fits one window of both readings: the same embeddings
            tried[name] = {"skipped": "every training text fits one window: the same "
                                      f"embeddings as {best['name']}"}
            continue
        if rate and best is not None:
            estimate = tokens / rate
            if estimate > budget:
                tried[name] = {"skipped": f"would take about {estimate:.0f} s to embed "
                                          f"(budget {budget:.0f} s)"}
                say(f"head: {name} skipped: embedding would take about {estimate:.0f} s")
                continue
        say(f"head: embedding {len(train_texts)} texts with the frozen encoder ({name})")
        clock = time.perf_counter()
        x = encoder.embed(train_texts)
        seconds = time.perf_counter() - clock
        rate = rate or tokens / max(seconds, 1e-3)
        entry = {"embed_seconds": round(seconds, 2)}
        score = None
        if not task.multi_label:
            c, score, folds = head.cross_validated(np.asarray(x, dtype=np.float32),
                                                   np.asarray(targets, dtype=int),
                                                   int(options.seed), groups)
            entry.update(C=c, cv_macro_f1=score, folds=folds)
            if score is not None:
                say(f"head: {name} cross-validated macro-F1 {score:.3f} (C={c:g})")
        tried[name] = entry
        if best is None or (score is not None and score > best["score"] + 1e-9):
            best = {"name": name, "long_texts": long_texts, "encoder": encoder, "x": x,
                    "score": score if score is not None else -1.0, "entry": entry}
    chosen_c = None
    if "C" in best["entry"]:
        chosen_c = (best["entry"]["C"], f"{best['entry']['folds']}-fold cross-validation"
                    if best["entry"]["folds"] else "default")
    state = HeadState(encoder=best["encoder"], x=np.asarray(best["x"], dtype=np.float32),
                      texts=list(train_texts), targets=list(targets),
                      groups=list(groups) if groups is not None else None,
                      long_texts=best["long_texts"], c=chosen_c,
                      whole_documents=whole_documents and best["long_texts"] == "truncate",
                      lexical="choose" if _lexical_wanted(task, options) else None)
    fit_info, tuned = _fit_head(task, state, options, folder, base, say)
    if len(tried) > 1:
        say(f"head: reading {best['name']} chosen"
            + (" (cross-validated macro-F1)" if best["score"] >= 0 else " (the default)"))
    info = {"method": "head", "encoder_path": base, "device": state.encoder.device,
            "max_length": state.encoder.max_length, "reading": best["name"],
            "readings": tried,
            **({"tokens_per_second": round(rate, 1)} if rate else {}),
            "hyperparameters": {"C": fit_info["C"], "C_chosen_by": fit_info["C_chosen_by"],
                                **{k: fit_info[k] for k in ("scale", "scale_chosen_by")
                                   if k in fit_info},
                                "class_weight": "balanced", "pooling": "mean",
                                "long_texts": best["long_texts"],
                                "lexical_mix": state.lexical.mix if isinstance(
                                    state.lexical, lexical.Choice) else 1.0},
            **({"lexical": fit_info["lexical"]} if "lexical" in fit_info else {}),
            **({"document_prediction": "whole text"} if state.whole_documents else {}),
            "train_seconds": round(time.perf_counter() - started, 2),
            **({"thresholds_tuned_on": tuned} if tuned else {})}
    return info, state


@dataclass
class HeadState:
    """What a trained head was chosen and fitted with: enough to fit it again on more
    labelled texts (:func:`_refit_head`) with the same choices, embedding only the new
    texts."""

    encoder: object
    x: object
    texts: list
    targets: list
    groups: list | None
    long_texts: str
    c: tuple | None
    whole_documents: bool
    #: "choose" (cross-validate it), a lexical.Choice (fit with it) or None (no lexical part)
    lexical: object = None


def _lexical_wanted(task: Task, options) -> bool:
    """Lexical evidence is tried for single-label tasks unless ``extra["lexical"]`` is
    false (the library's ``TrainOptions``)."""
    wanted = str((options.extra or {}).get("lexical", "true")).lower() not in (
        "false", "0", "no", "off")
    return wanted and not task.multi_label


def _fit_head(task, state: HeadState, options, folder: Path, base: str, say):
    """Fit the head (and its lexical part) on ``state`` and save it in ``folder``. Returns
    (fit info, how multi-label thresholds were tuned or None)."""
    from doctagger_classification import head

    encoder, x, targets = state.encoder, state.x, state.targets
    weight, bias, fit_info = head.fit(x, targets, n_labels=len(task.labels),
                                      multi_label=task.multi_label, seed=int(options.seed),
                                      c=state.c, groups=state.groups)
    state.c = (fit_info["C"], fit_info["C_chosen_by"])
    extra = {}
    if state.lexical == "choose":
        say(f"lexical: cross-validating TF-IDF evidence beside the head "
            f"({len(state.texts)} texts)")
        state.lexical = lexical.choose(state.texts, x, targets, head_c=fit_info["C"],
                                       head_scale=fit_info.get("scale", 1.0),
                                       n_labels=len(task.labels), groups=state.groups,
                                       seed=int(options.seed))
        if state.lexical is not None:
            scores = state.lexical.scores
            say("lexical: cross-validated macro-F1 by the head's weight in the mix: "
                + ", ".join(f"{w} {s:.3f}" for w, s in scores.items())
                + (f"; {state.lexical.mix:g} chosen" if state.lexical.used
                   else "; the head alone kept"))
    if isinstance(state.lexical, lexical.Choice) and state.lexical.used:
        terms, idf, lweight, lbias = lexical.fit(state.texts, targets, c=state.lexical.c,
                                                 n_labels=len(task.labels))
        extra["lexical"] = lexical.save(folder, terms, idf, lweight, lbias, state.lexical)
        fit_info["lexical"] = dict(extra["lexical"], scores=state.lexical.scores,
                                   folds=state.lexical.folds)
    head.save(folder, weight, bias, labels=task.labels, multi_label=task.multi_label,
              encoder=options.base_model, encoder_path=base, max_length=encoder.max_length,
              info={**{k: fit_info[k] for k in ("C", "scale") if k in fit_info}, **extra},
              long_texts=state.long_texts, whole_documents=state.whole_documents)
    tuned = None
    if task.multi_label:
        probs, folds = head.out_of_fold(x, targets, groups=state.groups,
                                        seed=int(options.seed))
        thresholds = multilabel.tune_thresholds(probs, targets)
        multilabel.save(folder, task.labels, thresholds, "out-of-fold" if folds else "default")
        tuned = {"on": "out-of-fold" if folds else "default", "examples": len(x),
                 "folds": folds}
    return fit_info, tuned


def _refit_head(task, state: HeadState, texts, vals, groups, options, folder: Path,
                base: str, say) -> dict:
    """Fit the head again on the training and the held-out texts, with the choices made on
    the training split alone (reading, C, lexical C, mix and temperature; the logit scale
    and multi-label thresholds are fitted again, out-of-fold). Only the held-out texts are
    embedded. Replaces the model in ``folder``; returns what the model card records."""
    import numpy as np

    clock = time.perf_counter()
    say(f"head: fitting again on all {len(state.texts) + len(texts)} labelled texts "
        "(the held-out score above was measured before)")
    more = state.encoder.embed(list(texts))
    state.x = np.concatenate([state.x, np.asarray(more, dtype=np.float32)])
    state.texts = state.texts + list(texts)
    state.targets = list(state.targets) + list(values.encode(task, vals))
    state.groups = (state.groups + list(groups)) if state.groups is not None else None
    for item in Path(folder).iterdir():
        if item.is_file():
            item.unlink()
    fit_info, tuned = _fit_head(task, state, options, folder, base, say)
    return {"on": "training and held-out examples", "texts": len(state.texts),
            "seconds": round(time.perf_counter() - clock, 2), "C": fit_info["C"],
            "scale": fit_info.get("scale"),
            **({"lexical_terms": fit_info["lexical"]["terms"]} if "lexical" in fit_info
               else {}),
            **({"thresholds_tuned_on": tuned} if tuned else {})}


def _refit_wanted(options) -> bool:
    """A head is fitted again on every label once measured, unless ``extra["refit"]`` is
    false (the library's ``TrainOptions``): with 20 labels a class, the fifth held out is a fifth of
    what it could learn from (bench/quality, docs/classification.md)."""
    return str((options.extra or {}).get("refit", "true")).lower() not in (
        "false", "0", "no", "off")


def tuning_slice(train_examples: list[Example], seed: int):
    """(fit, tune): :data:`TUNE_FRACTION` of the training examples, whole documents and
    stratified by label as the held-out split is, kept for the thresholds (tune is empty
    when the data is too small to spare any)."""
    from doctagger.splitting import split_examples

    return split_examples(train_examples, TUNE_FRACTION, seed)


def _calibrate(task, predictor, evaluation: list[Example], folder: Path, seed: int,
               metrics: dict, say) -> dict | None:
    """Temperature scaling of a fine-tuned single-label model (:mod:`temperature`): fitted on
    the held-out predictions once their macro-F1 is measured (decisions unchanged), folded
    into the saved model; ``metrics["calibration_error"]`` becomes the cross-fitted one.
    Returns what the model card records, or None when the split is too small."""
    import numpy as np

    from doctagger_classification import temperature

    index = {label: i for i, label in enumerate(predictor.labels)}
    keep = [e for e in evaluation if isinstance(e.value, str) and e.value in index]
    if len(keep) < temperature.MIN_EXAMPLES:
        return None
    log_p = np.log(np.clip(_probabilities(task, predictor, keep), 1e-12, None))
    gold = [index[e.value] for e in keep]
    error = temperature.cross_fitted_error(log_p, gold, seed)
    factor = temperature.fit(log_p, gold)
    temperature.apply(folder, factor)
    before = metrics.get("calibration_error")
    if error is not None:
        metrics["calibration_error"] = error
    say(f"finetune: scores scaled by {factor:g} (temperature fitted on the held-out split; "
        f"calibration error {before if before is not None else '?'} -> "
        f"{error if error is not None else '?'}, cross-fitted)")
    return {"factor": factor, "fitted_on": "held-out split, after its macro-F1 was measured",
            "calibration_error_before": before, "calibration_error": error,
            "calibration_error_measured": "cross-fitted over 3 folds of the held-out split"}


def _train_finetune(task, train_texts, train_values, eval_texts, eval_values, options,
                    folder: Path, base: str, say, tune: list[Example] | None = None,
                    whole_documents: bool = False):
    from doctagger.training import is_main_process
    from doctagger_classification import finetune
    from doctagger_classification.predictor import load as load_predictor

    info = finetune.train(labels=task.labels, multi_label=task.multi_label, texts=train_texts,
                          targets=values.encode(task, train_values), eval_texts=eval_texts,
                          eval_targets=values.encode(task, eval_values), options=options,
                          output_dir=folder, base_model=base, report=say,
                          whole_documents=whole_documents)
    if task.multi_label and is_main_process():
        thresholds, how = [multilabel.DEFAULT] * len(task.labels), "default"
        if tune:
            predictor = load_predictor(folder)
            thresholds = multilabel.tune_thresholds(
                _probabilities(task, predictor, tune), _multi_hot(predictor.labels, tune))
            how = "tuning-slice"
        multilabel.save(folder, task.labels, thresholds, how)
        info["thresholds_tuned_on"] = {"on": how, "examples": len(tune or [])}
    return info


#: texts embedded to measure the encoder's speed when no head has measured it
RATE_SAMPLE = 32


def _measured_rate(base: str, texts, max_length: int) -> tuple[float, list[int]]:
    """(tokens a second of the frozen encoder's forward pass on a sample of ``texts``,
    every text's token count)."""
    import random

    from doctagger_classification.encoder import Encoder

    encoder = Encoder(base, max_length=max_length, long_texts="truncate")
    counts = _token_counts(encoder.tokenizer, texts)
    sample = random.Random(0).sample(range(len(texts)), min(RATE_SAMPLE, len(texts)))
    clock = time.perf_counter()
    encoder.embed([texts[i] for i in sample])
    seconds = max(time.perf_counter() - clock, 1e-3)
    return sum(min(counts[i], encoder.max_length) for i in sample) / seconds, counts


def _fits_budget(options, base: str, texts, eval_texts, n_examples: int,
                 rate: float | None, whole_documents: bool = False) -> dict:
    """Whether fine-tuning on ``texts`` fits :func:`time_budget`, with the estimate."""
    from transformers import AutoTokenizer

    from doctagger import training
    from doctagger_classification import finetune

    hp = finetune.resolve(options, len(texts))
    max_length = int(hp["max_length"] or (finetune.DOCUMENT_MAX_LENGTH if whole_documents
                                          else finetune.MAX_LENGTH_CAP))
    tokenizer = AutoTokenizer.from_pretrained(base)
    if rate:
        counts = _token_counts(tokenizer, texts)
    else:
        rate, counts = _measured_rate(base, texts, max_length)
    estimate = finetune_estimate(counts, _token_counts(tokenizer, eval_texts) if eval_texts
                                 else [], rate, float(hp["epochs"]), max_length)
    budget = time_budget(options, n_examples)
    return {"fits": estimate <= budget, "estimate_seconds": round(estimate, 3),
            "epochs": float(hp["epochs"]),
            "budget_seconds": round(budget, 1), "tokens_per_second": round(rate, 1),
            "device": training.choose_device()}


def train(task: Task, train_examples: list[Example], evaluation: list[Example],
          options: TrainOptions, output_dir: Path) -> TrainResult:
    from doctagger import training
    from doctagger_classification.predictor import load as load_predictor

    method = (options.method or "auto").lower()
    if method not in METHODS:
        raise InvalidInputError(f"unknown method '{options.method}': use auto, finetune or head")
    if not train_examples:
        raise TrainingError(f"task '{task.name}' has no training examples: label some first")
    say = options.progress or (lambda message: None)
    override = (options.extra or {}).get("document_input")
    if override not in (None, "chunks", "whole"):
        raise InvalidInputError("document_input must be 'chunks' or 'whole'")
    base = training.resolve_base_model(options.base_model)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    enough = enough_for_finetune(task, train_examples)
    plan = {"auto": ["head"] + (["finetune"] if enough else []),
            "head": ["head"], "finetune": ["finetune"]}[method]
    if method == "auto" and not evaluation and enough:
        plan = ["finetune"]  # nothing to compare on: the rule's data condition decides
    distributed = training.world_size() > 1
    if distributed:  # several processes (torchrun / accelerate): only fine-tuning is parallel
        plan = ["finetune"]
    main = training.is_main_process()
    work = output_dir / ".candidates"
    candidates: dict[str, dict] = {}
    skipped: dict[str, dict] = {}
    estimates: dict[str, dict] = {}
    head_state = None
    for name in list(plan):
        folder = work / name
        how = override or DOCUMENT_INPUT[name]
        fit, tune = train_examples, []
        if name == "finetune" and task.multi_label:  # a slice for the thresholds
            fit, tune = tuning_slice(train_examples, int(options.seed))
        texts, vals, owner = expand(task, fit, how)
        eval_texts, eval_vals, _ = expand(task, evaluation, how)
        if name == "finetune" and method == "auto" and not distributed:
            rate = (candidates.get("head") or {}).get("info", {}).get("tokens_per_second")
            verdict = _fits_budget(options, base, texts, eval_texts, len(train_examples), rate,
                                   whole_documents=task.level == "document" and how == "whole")
            estimates[name] = verdict
            if verdict["fits"]:
                say(f"finetune: estimated {verdict['estimate_seconds']:.0f} s on "
                    f"{verdict['device']} (time budget {verdict['budget_seconds']:.0f} s)")
            else:
                say(f"finetune: skipped: it would take about {verdict['estimate_seconds']:.0f} s"
                    f" on {verdict['device']} (time budget {verdict['budget_seconds']:.0f} s; "
                    "--time-budget SECONDS to change it, --method finetune to force it)")
                skipped[name] = verdict
                plan.remove(name)
                if not plan:  # nothing trained yet (no held-out split): the head, then
                    plan.append("head")
                    name, how = "head", override or DOCUMENT_INPUT["head"]
                    fit, tune = train_examples, []
                    texts, vals, owner = expand(task, fit, how)
                    eval_texts, eval_vals, _ = expand(task, evaluation, how)
                else:
                    continue
        if name == "head":
            groups = [_group(fit[i]) for i in owner]
            if task.level == "chunk" and not task.multi_label and str(
                    (options.extra or {}).get("whole_texts", "true")).lower() != "false":
                more = _whole_texts(fit)
                texts, vals = texts + [t for t, _, _ in more], vals + [v for _, v, _ in more]
                groups = groups + [g for _, _, g in more]
            info, head_state = _train_head(
                task, texts, vals, options, folder, base, say,
                groups=groups,
                whole_documents=task.level == "document" and how == "whole")
        else:
            say(f"finetune: {len(texts)} texts, base model {base}"
                + (f"; {len(tune)} training examples held back to tune the thresholds on"
                   if tune else ""))
            info = _train_finetune(task, texts, vals, eval_texts, eval_vals, options,
                                   folder, base, say, tune,
                                   whole_documents=task.level == "document" and how == "whole")
        training.barrier()  # the main process has written the model
        metrics: dict = {}
        if evaluation and main:
            predictor = load_predictor(folder)
            metrics = held_out_scores(task, predictor, evaluation)
            say(f"{name}: held-out macro-F1 {metrics['macro_f1']:.3f}")
            if name == "finetune" and not task.multi_label:
                calibrated = _calibrate(task, predictor, evaluation, folder,
                                        int(options.seed), metrics, say)
                if calibrated:
                    info["temperature"] = calibrated
        candidates[name] = {"info": info, "metrics": metrics, "folder": folder, "how": how,
                            "n_texts": len(texts)}
    if len(candidates) > 1:
        winner = max(plan, key=lambda n: (candidates[n]["metrics"].get("macro_f1", -1.0),
                                          n == "head"))
    else:
        winner = plan[0]
    chosen = candidates[winner]
    refit = None
    if winner == "head" and evaluation and main and _refit_wanted(options):
        eval_texts, eval_vals, eval_owner = expand(task, evaluation, chosen["how"])
        refit = _refit_head(task, head_state, eval_texts, eval_vals,
                            [_group(evaluation[i]) for i in eval_owner], options,
                            chosen["folder"], base, say)
    if main:
        for item in chosen["folder"].iterdir():
            shutil.move(str(item), str(output_dir / item.name))
        shutil.rmtree(work, ignore_errors=True)
    training.barrier()
    info = dict(chosen["info"])
    info.update({
        "method": winner, "method_requested": method,
        "base_model": options.base_model or BUNDLED, "base_model_path": base,
        "multi_label": task.multi_label, "level": task.level, "labels": list(task.labels),
        "document_input": chosen["how"] if task.level == "document" else None,
        "n_train_examples": len(train_examples), "n_train_texts": chosen["n_texts"],
        "n_eval_examples": len(evaluation),
        "train_seconds": round(time.perf_counter() - started, 2),
        "candidates": {**{n: {"macro_f1": c["metrics"].get("macro_f1"),
                              "train_seconds": c["info"].get("train_seconds"),
                              **({"estimate_seconds": estimates[n]["estimate_seconds"]}
                                 if n in estimates else {})}
                          for n, c in candidates.items()},
                       **{n: {"skipped": "over the time budget", **v}
                          for n, v in skipped.items()}},
    })
    if refit:
        info["refit"] = refit
    if method == "auto":
        info["auto_rule"] = AUTO_RULE
    if winner == "head":
        from doctagger_classification.head import USAGE

        info["usage"] = USAGE
    else:
        info["pipeline_tag"] = "text-classification"
        if task.multi_label:
            info["usage"] = MULTI_LABEL_USAGE
        elif info.get("document_prediction"):
            info["usage"] = DOCUMENT_USAGE
    if task.multi_label and main:
        info["thresholds"] = dict(zip(task.labels, multilabel.load(output_dir, task.labels)))
    metrics = dict(chosen["metrics"])
    if not evaluation:
        metrics = {"note": "no held-out split: too few examples to evaluate honestly"}
    return TrainResult(metrics=metrics, info=info)
