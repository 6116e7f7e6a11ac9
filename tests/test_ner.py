"""The first-party "ner" task type: alignment, labels, training, prediction, pipelines.

The transformer path runs on a tiny random BERT (2 layers, hidden size 32, a WordPiece
vocabulary written to tmp_path) so it takes seconds; one slow test uses the bundled MiniLM.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from doctagger.errors import InvalidLabelError
from doctagger.tasktypes import (ChunkPrediction, Example, Prediction, Task, TrainOptions)
from doctagger_ner import align
from doctagger_ner.tasktype import NERTaskType

TYPES = ["PER", "ORG", "LOC"]


def ner_task(labels=TYPES) -> Task:
    return Task(name="ents", type="ner", labels=list(labels), id=1)


def span(start, end, label):
    return {"start": start, "end": end, "label": label}


# -- alignment: hand-made offsets -----------------------------------------------------------
# "Tim Cook's Apple Inc. rocks" as a BERT-style tokenizer cuts it (punctuation split, sub-words)
TEXT = "Tim Cook's Apple Inc. rocks"
#          tim     cook     '        s         apple     inc       .         ro        ##cks
OFFSETS = [(0, 3), (4, 8), (8, 9), (9, 10), (11, 16), (17, 20), (20, 21), (22, 24), (24, 27)]
WORD_IDS = [0, 1, 2, 3, 4, 5, 6, 7, 7]


def test_word_spans_join_sub_tokens():
    words = align.word_char_spans([OFFSETS], [WORD_IDS])
    assert words == [(0, 3), (4, 8), (8, 9), (9, 10), (11, 16), (17, 20), (20, 21), (22, 27)]
    assert [TEXT[s:e] for s, e in words][-1] == "rocks"


def test_word_tags_bio_and_punctuation():
    words = align.word_char_spans([OFFSETS], [WORD_IDS])
    tags, inexact = align.word_tags(words, [span(0, 8, "PER"), span(11, 21, "ORG")])
    assert tags == ["B-PER", "I-PER", "O", "O", "B-ORG", "I-ORG", "I-ORG", "O"]
    assert inexact == 0


def test_word_tags_count_spans_off_word_boundaries():
    words = align.word_char_spans([OFFSETS], [WORD_IDS])
    # "ock" starts inside "Cook": the whole word is tagged; a span over a space finds no word
    tags, inexact = align.word_tags(words, [span(5, 8, "PER"), span(10, 11, "LOC")])
    assert tags[1] == "B-PER" and tags.count("O") == len(words) - 1
    assert inexact == 2


def test_adjacent_entities_of_one_type_stay_apart():
    words = [(0, 3), (4, 7), (8, 11)]
    tags, _ = align.word_tags(words, [span(0, 3, "PER"), span(4, 11, "PER")])
    assert tags == ["B-PER", "B-PER", "I-PER"]
    assert align.decode(words, tags) == [span(0, 3, "PER"), span(4, 11, "PER")]


def test_labels_only_on_first_sub_token_and_not_on_special_tokens():
    # with [CLS] and [SEP] around the text
    offsets = [(0, 0)] + OFFSETS + [(0, 0)]
    word_ids = [None] + WORD_IDS + [None]
    words = align.word_char_spans([offsets], [word_ids])
    firsts = align.first_subtokens(offsets, word_ids, words)
    assert firsts == [(1, 0), (2, 1), (3, 2), (4, 3), (5, 4), (6, 5), (7, 6), (8, 7)]
    tags, _ = align.word_tags(words, [span(22, 27, "ORG")])
    label2id = {t: i for i, t in enumerate(align.bio_labels(TYPES))}
    labels = align.window_labels(len(offsets), firsts, tags, label2id)
    assert labels[0] == labels[-1] == align.IGNORE  # special tokens
    assert labels[8] == label2id["B-ORG"]  # "ro"
    assert labels[9] == align.IGNORE  # "##cks"
    assert labels[1:8] == [label2id["O"]] * 7


def test_window_starting_inside_a_word_does_not_label_the_continuation():
    # "unbelievably good": un ##believ ##ably good, cut into two windows of 3 content tokens
    w1_offsets, w1_ids = [(0, 0), (0, 2), (2, 8), (8, 12), (0, 0)], [None, 0, 0, 0, None]
    w2_offsets, w2_ids = [(0, 0), (8, 12), (13, 17), (0, 0)], [None, 0, 1, None]
    words = align.word_char_spans([w1_offsets, w2_offsets], [w1_ids, w2_ids])
    assert words == [(0, 12), (13, 17)]
    assert align.first_subtokens(w1_offsets, w1_ids, words) == [(1, 0)]
    # "##ably" opens window 2 but does not begin its word
    assert align.first_subtokens(w2_offsets, w2_ids, words) == [(2, 1)]


def test_overlapping_windows_read_each_word_where_it_has_most_context():
    windows = [align.Window(0, [0] * 6, [1] * 6, firsts=[(1, 0), (2, 1), (3, 2), (4, 3)]),
               align.Window(0, [0] * 6, [1] * 6, firsts=[(1, 2), (2, 3), (3, 4), (4, 5)])]
    best = align.best_positions(windows)
    assert best[0] == (0, 1) and best[5] == (1, 4)
    assert best[2] == (0, 3)  # context 2 in window 0 (position 3 of 6) vs 1 in window 1
    assert best[3] == (1, 2)  # context 1 in window 0 vs 2 in window 1
    outputs = {(0, 1): "B-PER", (0, 2): "I-PER", (0, 3): "O", (0, 4): "B-LOC",
               (1, 1): "B-ORG", (1, 2): "B-LOC", (1, 3): "I-LOC", (1, 4): "O"}
    tags, confs = align.merge_tags(windows, [0, 1], 6, lambda k, p: outputs[(k, p)],
                                   lambda k, p: 0.5 + k / 4)
    assert tags == ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O"]
    assert confs == [0.5, 0.5, 0.5, 0.75, 0.75, 0.75]


def test_decode_rules():
    words = [(0, 2), (3, 5), (6, 8), (9, 11), (12, 14)]
    # an I- after O starts an entity; an I- of another type starts a new one
    tags = ["I-PER", "I-PER", "I-ORG", "O", "B-LOC"]
    assert align.decode(words, tags, [1.0, 0.5, 0.25, 1.0, 0.75]) == [
        {"start": 0, "end": 5, "label": "PER", "score": 0.75},
        {"start": 6, "end": 8, "label": "ORG", "score": 0.25},
        {"start": 12, "end": 14, "label": "LOC", "score": 0.75}]
    assert align.decode([], []) == []


def test_bio_labels():
    assert align.bio_labels(["PER", "ORG"]) == ["O", "B-PER", "I-PER", "B-ORG", "I-ORG"]


# -- the task type without a model ---------------------------------------------------------
def test_registered_through_the_entry_point():
    from doctagger.plugins import get_task_type

    task_type = get_task_type("ner")
    assert task_type.value_kind == "spans" and task_type.levels == ("chunk",)


def test_validate_sorts_and_drops_scores():
    ner = NERTaskType()
    value = [span(10, 14, "ORG"), {"start": 0, "end": 3, "label": "PER", "score": 0.9}]
    assert ner.validate(ner_task(), value) == [span(0, 3, "PER"), span(10, 14, "ORG")]
    assert ner.validate(ner_task(), []) == []


@pytest.mark.parametrize("value, message", [
    ("PER", "expects NER spans"),
    ([span(0, 3, "MONEY")], "unknown entity type 'MONEY'"),
    ([span(3, 3, "PER")], "empty or negative"),
    ([span(-1, 3, "PER")], "empty or negative"),
    ([{"start": "0", "end": 3, "label": "PER"}], "integer"),
    ([{"start": 0, "label": "PER"}], "needs 'start', 'end' and 'label'"),
    ([span(0, 5, "PER"), span(3, 8, "ORG")], "overlap"),
])
def test_validate_refuses(value, message):
    with pytest.raises(InvalidLabelError, match=message):
        NERTaskType().validate(ner_task(), value)


def test_unknown_entity_type_says_how_to_add_it(invoke, tmp_path):
    """The message names the command that adds the type, with the real task and label,
    and (CoNLL) the line of the token tagged with it."""
    assert invoke("tasks", "create", "ents", "--type", "ner", "--labels", "PER,ORG").exit_code == 0
    f = tmp_path / "bad.conll"
    f.write_text("Alice\tB-PER\nsaw\tO\nthe\tO\ncat\tB-animal\n\n")
    result = invoke("import", "ents", f)
    assert result.exit_code == 1
    assert result.output == (f"Error: {f}, line 4: unknown entity type 'animal' for task ents; "
                             "use one of PER, ORG (or add it to the task: doctagger tasks "
                             "add-labels ents animal)\n")


@pytest.mark.parametrize("labels, kwargs, message", [
    (["PER"], {"level": "document"}, "chunk-level only"),
    (["PER"], {"multi_label": True}, "--multi-label does not apply"),
    (["B-PER", "I-PER"], {}, "looks like a BIO tag"),
    (["O", "PER"], {}, "looks like a BIO tag"),
    (["PER", "PER"], {}, "given twice"),
    (["FIRST NAME"], {}, "white space"),
    ([], {}, "--labels"),
])
def test_check_labels_refuses(labels, kwargs, message):
    options = {"multi_label": False, "level": "chunk", **kwargs}
    with pytest.raises(InvalidLabelError, match=message):
        NERTaskType().check_labels(labels, **options)


def test_tasks_create_refuses_a_document_level_ner_task(invoke):
    result = invoke("tasks", "create", "ents", "--type", "ner", "--labels", "PER,ORG",
                    "--level", "document")
    assert result.exit_code == 1
    assert "use --level chunk" in result.output
    bio = invoke("tasks", "create", "ents", "--type", "ner", "--labels", "B-PER,I-PER")
    assert bio.exit_code == 1
    assert "looks like a BIO tag" in bio.output
    ok = invoke("tasks", "create", "ents", "--type", "ner", "--labels", "PER,ORG")
    assert ok.exit_code == 0, ok.output


def test_rollup_one_tag_per_entity_with_page_and_offsets():
    text1, text2 = "Tim Cook met Apple people.", "Later tim  cook left APPLE."
    items = [
        ChunkPrediction(7, 1, text1, Prediction([
            {"start": 0, "end": 8, "label": "PER", "score": 0.8},
            {"start": 13, "end": 18, "label": "ORG", "score": 0.6}], 0.6)),
        ChunkPrediction(9, 2, text2, Prediction([
            {"start": 6, "end": 15, "label": "PER", "score": 0.9},
            {"start": 21, "end": 26, "label": "ORG"}], 0.5)),  # no span score: chunk score
    ]
    tags = NERTaskType().rollup(ner_task(), items)
    assert [(t.label, t.score, t.chunk_ids) for t in tags] == [
        ("PER", 0.9, [9, 7]), ("ORG", 0.6, [7, 9])]
    assert tags[0].extra == {"text": "Tim Cook", "page": 1, "chunk_id": 7, "start": 0,
                             "end": 8, "count": 2}
    assert NERTaskType().rollup(ner_task(), []) == []


def test_uncertainty_uses_the_weakest_word():
    ner = NERTaskType()
    from doctagger_ner.predictor import NERPrediction

    assert ner.uncertainty(ner_task(), NERPrediction([], 0.9, min_token_confidence=0.6)) \
        == pytest.approx(0.4)
    assert ner.uncertainty(ner_task(), Prediction([], 0.7)) == pytest.approx(0.3)


def test_evaluate_entity_level_scores():
    ner = NERTaskType()
    examples = [Example("Tim Cook met Apple.", [span(0, 8, "PER"), span(13, 18, "ORG")]),
                Example("Paris is big.", [span(0, 5, "LOC")])]
    preds = [Prediction([span(0, 8, "PER"), span(13, 19, "ORG")], 0.9),  # ORG end is wrong
             Prediction([span(0, 5, "LOC"), span(9, 12, "PER")], 0.9)]
    scores = ner.evaluate(ner_task(), examples, preds)
    assert scores["precision"] == pytest.approx(2 / 4)
    assert scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 * (0.5 * 2 / 3) / (0.5 + 2 / 3))
    assert scores["per_type"]["ORG"]["f1"] == 0
    assert scores["per_type"]["LOC"]["f1"] == 1


# -- training on a tiny random BERT ---------------------------------------------------------
PEOPLE = ["Alice Smith", "Bob", "Carol Jones", "Dave", "Erin"]
ORGS = ["Acme", "Globex Corp", "Initech", "Umbrella"]
CITIES = ["Paris", "Berlin", "Oslo", "Lima"]
TEMPLATES = ["{p} works at {o} in {c}.", "Yesterday {p} left {o} for {c}!",
             "In {c}, {o} hired {p} (again)."]


def synthetic(n: int, seed: int = 0) -> list[Example]:
    import random

    rnd = random.Random(seed)
    out = []
    for i in range(n):
        slots = {"p": rnd.choice(PEOPLE), "o": rnd.choice(ORGS), "c": rnd.choice(CITIES)}
        template = TEMPLATES[i % len(TEMPLATES)]
        text, spans, rest = "", [], template
        while "{" in rest:
            before, _, after = rest.partition("{")
            key, after = after[0], after[2:]
            text += before
            spans.append(span(len(text), len(text) + len(slots[key]),
                              {"p": "PER", "o": "ORG", "c": "LOC"}[key]))
            text += slots[key]
            rest = after
        out.append(Example(text + rest, sorted(spans, key=lambda s: s["start"]), group=i))
    return out


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    from doctagger.testing import tiny_bert

    texts = [e.text for e in synthetic(30)] + ["unbelievably long words"]
    return tiny_bert(tmp_path_factory.mktemp("tiny") / "base", texts)


@pytest.fixture(scope="module")
def trained(tiny_base, tmp_path_factory):
    """A tiny model trained for a few seconds, windows of 24 tokens (so long texts are cut)."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = tmp_path_factory.mktemp("model") / "v1"
    out.mkdir()
    messages = []
    options = TrainOptions(base_model=str(tiny_base), epochs=12, learning_rate=5e-3,
                           batch_size=8, max_length=24, progress=messages.append)
    examples = synthetic(48)
    from doctagger_ner import train as train_module

    before, train_module.GROUP_BY_LENGTH_MIN = train_module.GROUP_BY_LENGTH_MIN, 1
    try:  # length-grouped batches, which also reorder the Trainer's evaluation
        result = NERTaskType().train(ner_task(), examples[:40], examples[40:], options, out)
    finally:
        train_module.GROUP_BY_LENGTH_MIN = before
    return {"dir": out, "result": result, "messages": messages, "eval": examples[40:]}


def test_train_writes_a_plain_hugging_face_folder(trained):
    out, result = trained["dir"], trained["result"]
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "doctagger_ner.json"} <= names
    assert not any(n.endswith((".bin", ".pt")) for n in names)
    assert "checkpoints" not in names  # removed: nothing but the model travels with it
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {str(i): t for i, t in enumerate(align.bio_labels(TYPES))}
    settings = json.loads((out / "doctagger_ner.json").read_text())
    assert settings["max_length"] == 24 and settings["stride"] == (24 - 2) // 4


def test_train_reports_held_out_entity_scores_and_run_info(trained):
    metrics, info = trained["result"].metrics, trained["result"].info
    assert set(metrics) >= {"precision", "recall", "f1", "per_type"}
    assert metrics["f1"] > 0.5  # the pattern is easy: a model that learned nothing scores 0
    assert set(metrics["per_type"]) <= set(TYPES)
    assert info["method"] == "finetune" and info["device"] == "cpu"
    assert info["max_length"] == 24 and info["eval_texts"] == 8
    assert info["hyperparameters"]["learning_rate"] == 5e-3
    assert info["best_epoch"] is not None
    json.dumps(metrics), json.dumps(info)
    assert any("Fine-tuning" in m for m in trained["messages"])
    # 12 epochs of 5 steps: evaluated every 2nd epoch (at most 10 evaluations a run)
    assert [m.split(":")[0] for m in trained["messages"] if m.startswith("epoch ")][:2] == \
        ["epoch 2", "epoch 4"]


def test_predict_spans_scores_and_windows(trained):
    predictor = NERTaskType().load(ner_task(), trained["dir"])
    texts = [e.text for e in trained["eval"]]
    long_text = " ".join(texts * 4)  # far beyond the 24-token window
    preds = predictor.predict(texts + ["", long_text])
    assert len(preds) == len(texts) + 2
    assert preds[len(texts)].value == [] and preds[len(texts)].score == 1.0
    for text, pred in zip(texts + ["", long_text], preds):
        assert NERTaskType().validate(ner_task(), pred.value) == \
            [{k: s[k] for k in ("start", "end", "label")} for s in pred.value]
        assert all(0 <= s["start"] < s["end"] <= len(text) and 0 <= s["score"] <= 1
                   for s in pred.value)
        assert 0 <= pred.min_token_confidence <= pred.score <= 1 or not pred.value
        assert pred.scores is None
    found = preds[-1].value
    assert found and found[-1]["start"] > len(long_text) // 2  # later windows are read too
    # the same text alone and in a batch: the same answer
    alone = predictor.predict([texts[0]])[0]
    assert [(s["start"], s["end"], s["label"]) for s in alone.value] == \
        [(s["start"], s["end"], s["label"]) for s in preds[0].value]
    assert alone.score == pytest.approx(preds[0].score, abs=1e-5)
    assert predictor.predict([]) == []


def test_evaluate_matches_the_training_scores(trained):
    ner = NERTaskType()
    predictor = ner.load(ner_task(), trained["dir"])
    preds = predictor.predict([e.text for e in trained["eval"]])
    scores = ner.evaluate(ner_task(), trained["eval"], preds)
    assert scores["f1"] == pytest.approx(trained["result"].metrics["f1"])


def test_pipeline_token_classification_agrees_with_doctagger(trained):
    from transformers import pipeline

    texts = [e.text for e in trained["eval"]] + ["Erin moved to Lima, said Acme."]
    ours = NERTaskType().load(ner_task(), trained["dir"]).predict(texts)
    pipe = pipeline("token-classification", model=str(trained["dir"]),
                    aggregation_strategy="first", device="cpu")
    theirs = pipe(texts)
    assert any(p.value for p in ours)
    for mine, other in zip(ours, theirs):
        assert [(s["start"], s["end"], s["label"]) for s in mine.value] == \
            [(e["start"], e["end"], e["entity_group"]) for e in other]
        assert [s["score"] for s in mine.value] == \
            pytest.approx([float(e["score"]) for e in other], abs=1e-4)
    # "simple" (the guide's call) loads and runs the same folder unchanged
    assert isinstance(pipeline("token-classification", model=str(trained["dir"]),
                               aggregation_strategy="simple", device="cpu")(texts[0]), list)


def test_conformance(tiny_base, tmp_path):
    from doctagger.testing import check_task_type

    report = check_task_type("ner", labels=TYPES, tmp_path=tmp_path,
                             train_options=TrainOptions(base_model=str(tiny_base), epochs=1))
    report.assert_ok()


def test_small_data_gets_enough_steps_and_few_evaluations():
    from doctagger_ner.train import schedule

    hp = {"epochs": 8, "batch_size": 16}
    assert schedule(hp, 3394, TrainOptions()) == (8.0, None)  # 213 steps an epoch: as is
    assert schedule(hp, 100, TrainOptions()) == (22.0, 21)  # 7 steps an epoch; every 3rd
    assert schedule(hp, 48, TrainOptions()) == (40.0, 12)  # capped at 40 epochs
    assert schedule({"epochs": 3, "batch_size": 16}, 48, TrainOptions(epochs=3)) == (3.0, None)
    assert schedule(hp, 48, TrainOptions(preset="conservative"))[0] == 8.0


def test_resume_continues_from_the_last_checkpoint(tiny_base, tmp_path):
    checkpoints = tmp_path / "checkpoints"
    examples = synthetic(20)

    def run(epochs, resume, name):
        out = tmp_path / name
        out.mkdir()
        options = TrainOptions(base_model=str(tiny_base), epochs=epochs, learning_rate=5e-3,
                               batch_size=8, resume=resume,
                               extra={"checkpoint_dir": str(checkpoints)})
        return NERTaskType().train(ner_task(), examples[:16], examples[16:], options, out)

    first = run(2, False, "a")
    assert sorted(p.name for p in checkpoints.glob("checkpoint-*")) == \
        ["checkpoint-2", "checkpoint-4"]
    second = run(3, True, "b")
    assert first.info["resumed_from"] is None
    assert second.info["resumed_from"] == "checkpoint-4"
    assert second.info["epochs_run"] == 3
    assert (checkpoints / "checkpoint-6").is_dir()  # one more epoch, not three
    assert "f1" in second.metrics and "per_type" in second.metrics
    assert first.metrics.keys() == second.metrics.keys()


def test_train_refuses_what_cannot_work(tiny_base, tmp_path):
    from doctagger.errors import TrainingError

    ner = NERTaskType()
    with pytest.raises(TrainingError, match="--method head is not available"):
        ner.train(ner_task(), synthetic(4), [], TrainOptions(method="head"), tmp_path)
    with pytest.raises(TrainingError, match="no labelled chunks"):
        ner.train(ner_task(), [], [], TrainOptions(), tmp_path)
    with pytest.raises(TrainingError, match="too short"):
        ner.train(ner_task(), synthetic(4), [],
                  TrainOptions(base_model=str(tiny_base), max_length=4), tmp_path)


def write_conll(path: Path, examples: list[Example]) -> Path:
    """The examples as a CoNLL file (their spans fall on white-space tokens)."""
    from doctagger.formats import LabelRecord, write_labels

    with open(path, "w", encoding="utf-8", newline="") as fh:
        write_labels([LabelRecord(line=0, value=e.value, text=e.text) for e in examples], fh,
                     "conll", kind="spans")
    return path


def conll_examples(n: int, seed: int = 0) -> list[Example]:
    """synthetic() with the punctuation split off, as CoNLL files have it."""
    out = []
    for e in synthetic(n, seed):
        text = e.text.replace(",", " ,").replace(".", " .").replace("!", " !") \
            .replace("(", "( ").replace(")", " )")
        spans, pos = [], 0
        for s in e.value:
            surface = e.text[s["start"]:s["end"]]
            start = text.index(surface, pos)
            spans.append(span(start, start + len(surface), s["label"]))
            pos = start + len(surface)
        out.append(Example(text, spans, group=e.group))
    return out


def test_cli_import_train_tag_search(invoke, tiny_base, tmp_path):
    examples = conll_examples(40)
    conll = write_conll(tmp_path / "ents.conll", examples)
    assert invoke("tasks", "create", "ents", "--type", "ner", "--labels", "PER,ORG,LOC"
                  ).exit_code == 0
    imported = invoke("import", "ents", conll)
    assert imported.exit_code == 0, imported.output
    trained = invoke("train", "ents", "--base-model", tiny_base, "--epochs", 12,
                     "--learning-rate", "5e-3", "--batch-size", 8, "--json")
    assert trained.exit_code == 0, trained.output
    summary = json.loads(trained.stdout)
    assert summary["version"] == 1 and summary["method"] == "finetune"
    assert summary["metrics"]["f1"] > 0.5 and "per_type" in summary["metrics"]
    tagged = invoke("tag", "ents", "--json")
    assert tagged.exit_code == 0, tagged.output
    assert json.loads(tagged.stdout)["chunks"] == len({e.text for e in examples})
    found = invoke("search", "--entity", "ents=PER", "--json")
    assert found.exit_code == 0, found.output
    assert json.loads(found.stdout)


def test_cli_train_refuses_the_head_method(invoke, tiny_base, tmp_path):
    conll = write_conll(tmp_path / "ents.conll", conll_examples(12))
    invoke("tasks", "create", "ents", "--type", "ner", "--labels", "PER,ORG,LOC")
    invoke("import", "ents", conll)
    result = invoke("train", "ents", "--method", "head", "--base-model", tiny_base)
    assert result.exit_code == 1
    assert "--method head is not available for ner" in result.output


# -- the real bundled model ----------------------------------------------------------------
@pytest.mark.slow
def test_minilm_end_to_end_and_pipeline_agreement(invoke, index_path, tmp_path):
    """import -> train (bundled all-MiniLM-L6-v2, defaults but fewer epochs) -> tag, and
    transformers.pipeline on the registered folder finds what doctagger finds."""
    from transformers import pipeline

    conll = write_conll(tmp_path / "ents.conll", conll_examples(60, seed=1))
    invoke("tasks", "create", "ents", "--type", "ner", "--labels", "PER,ORG,LOC")
    assert invoke("import", "ents", conll).exit_code == 0
    trained = invoke("train", "ents", "--epochs", 8, "--json")
    assert trained.exit_code == 0, trained.output
    summary = json.loads(trained.stdout)
    assert summary["metrics"]["f1"] >= 0.8, summary["metrics"]
    assert invoke("tag", "ents").exit_code == 0
    model_dir = Path(summary["path"])
    if not model_dir.is_absolute():
        model_dir = index_path / model_dir
    texts = ["Carol Jones works at Umbrella in Zürich .", "In Oslo , Initech hired Bob ."]
    ours = NERTaskType().load(ner_task(), model_dir).predict(texts)
    theirs = pipeline("token-classification", model=str(model_dir),
                      aggregation_strategy="first", device="cpu")(texts)
    assert any(p.value for p in ours)
    for mine, other in zip(ours, theirs):
        assert [(s["start"], s["end"], s["label"]) for s in mine.value] == \
            [(e["start"], e["end"], e["entity_group"]) for e in other]


# -- runtime: bf16/int8 checked window by window against fp32 ---------------------------------
def _spans(predictions):
    return [[(s["start"], s["end"], s["label"]) for s in p.value] for p in predictions]


def test_ner_runtime_modes(trained, monkeypatch):
    from doctagger.runtime import CHECK_ROWS
    from doctagger_ner.predictor import NERPredictor

    plain = NERPredictor(trained["dir"], runtime="torch")
    assert plain.fast is None and str(plain.runtime) == "torch-fp32"
    texts = [e.text for e in trained["eval"]] * 12  # more windows than the check needs
    want = _spans(plain.predict(texts))
    fast = NERPredictor(trained["dir"], runtime="bf16")
    assert str(fast.runtime) == "torch-bf16 (checking)"
    assert _spans(fast.predict(texts)) == want
    assert fast.runtime.checked >= CHECK_ROWS and not fast.runtime.checking
    monkeypatch.setenv("DOCTAGGER_RUNTIME", "torch")
    assert str(NERTaskType().load(ner_task(), trained["dir"]).runtime) == "torch-fp32"


def test_ner_runtime_reruns_unclear_windows_and_drops_a_wrong_one(trained, monkeypatch):
    """A fast version that moves the probabilities a little is kept, and the windows it
    leaves too close to call are run again in fp32: every tag stays fp32's. One that
    answers differently is dropped."""
    import torch

    from doctagger import runtime

    # the tiny model is unsure of some word in most windows: re-running many is allowed here
    monkeypatch.setattr(runtime, "MAX_RECHECK_SHARE", 1.0)

    from doctagger_ner.predictor import NERPredictor

    texts = [e.text for e in trained["eval"]] * 12
    want = _spans(NERPredictor(trained["dir"], runtime="torch").predict(texts))
    pred = NERPredictor(trained["dir"], runtime="bf16")
    model = pred.model
    push = torch.zeros(model.config.num_labels)
    push[0] = 0.3  # moves a probability by up to ~0.07: kept, with a wide re-check margin

    pred.fast = lambda batch: model(**batch).logits + push
    assert _spans(pred.predict(texts)) == want
    assert str(pred.runtime) == "torch-bf16", pred.runtime.reason
    assert pred.runtime.recheck_margin > 0.05  # it saw the push
    pred.runtime.recheck_margin = 0.5  # as if the noise had been larger: more windows again
    assert _spans(pred.predict(texts)) == want and pred.runtime.rechecked > 0
    wrong = NERPredictor(trained["dir"], runtime="bf16")
    wrong.fast = lambda batch: -10 * model(**batch).logits
    assert _spans(wrong.predict(texts)) == want  # fp32's answers while checking
    assert wrong.runtime.dropped and "torch-bf16 dropped" in wrong.runtime.reason
    assert _spans(wrong.predict(texts)) == want


def test_ner_batches_windows_by_device(trained):
    from doctagger_ner.predictor import CPU_BATCH, NERPredictor

    assert NERPredictor(trained["dir"], device="cpu").batch_size == CPU_BATCH
    assert NERPredictor(trained["dir"], device="cpu", batch_size=3).batch_size == 3
