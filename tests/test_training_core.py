"""doctagger.training: the Hugging Face helpers, on a tiny random BERT built in tmp_path."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from doctagger import training
from doctagger.errors import InvalidInputError, TrainingError
from doctagger.tasktypes import TrainOptions

REPO = Path(__file__).resolve().parents[1]
WORDS = "good fine great nice bad poor awful sad the a text is very".split()
LABELS = ["pos", "neg"]


def texts_and_labels(n):
    out = []
    for i in range(n):
        if i % 2 == 0:
            out.append((f"the text is {WORDS[i % 4]} very {WORDS[(i + 1) % 4]}", 0))
        else:
            out.append((f"a text is {WORDS[4 + i % 4]}", 1))
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny WordPiece vocabulary and BERT config (2 layers, hidden 32) on disk."""
    from transformers import AutoModelForSequenceClassification, BertConfig, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + list("abcdefghijklmnopqrstuvwxyz")
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizer(vocab_file=str(folder / "vocab.txt"))
    tokenizer.save_pretrained(folder)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=37,
                        max_position_embeddings=64, num_labels=2)
    model = AutoModelForSequenceClassification.from_config(config)
    model.save_pretrained(folder)
    return folder


def test_resolve_base_model(tmp_path, monkeypatch):
    bundled = training.resolve_base_model(None)
    assert (training.Path(bundled) / "config.json").is_file()
    with pytest.raises(TrainingError, match="no config.json"):
        training.resolve_base_model(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    assert training.resolve_base_model(str(tmp_path)) == str(tmp_path.resolve())
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(TrainingError, match="only pickled weights"):
        training.resolve_base_model(tmp_path)
    with pytest.raises(TrainingError, match="is a file"):
        training.resolve_base_model(tmp_path / "config.json")
    with pytest.raises(TrainingError, match="no such folder"):
        training.resolve_base_model("./not/here")
    with pytest.raises(TrainingError, match="offline and not in the local cache.*--base-model DIR"):
        training.resolve_base_model("some-org/no-such-model-zz")


def test_choose_device_and_precision(monkeypatch):
    monkeypatch.setenv("DOCTAGGER_DEVICE", "cpu")
    assert training.choose_device() == "cpu"
    monkeypatch.setenv("DOCTAGGER_DEVICE", "tpu")
    with pytest.raises(InvalidInputError, match="use cuda, mps or cpu"):
        training.choose_device()
    monkeypatch.delenv("DOCTAGGER_DEVICE")
    assert training.choose_device() in ("cuda", "mps", "cpu")
    assert training.precision("cpu") == {} and training.precision("mps") == {}


def test_hyperparameters_resolution_order():
    hp = training.hyperparameters(TrainOptions(), 1000, None)
    assert {k: hp[k] for k in training.PRESETS["conservative"]} == training.PRESETS["conservative"]
    assert hp["max_length"] is None and hp["seed"] == 42
    hp = training.hyperparameters(TrainOptions(), 1000, {"epochs": 10, "extra": 1})
    assert hp["epochs"] == 10 and hp["extra"] == 1
    hp = training.hyperparameters(TrainOptions(preset="aggressive"), 1000, {"epochs": 10})
    assert hp["epochs"] == 5 and hp["learning_rate"] == 5e-5 and hp["weight_decay"] == 0.1
    hp = training.hyperparameters(TrainOptions(preset="aggressive", epochs=2, batch_size=8,
                                               learning_rate=1e-4, max_length=64, seed=3),
                                  1000, {"epochs": 10})
    assert (hp["epochs"], hp["batch_size"], hp["learning_rate"], hp["max_length"],
            hp["seed"], hp["preset"]) == (2, 8, 1e-4, 64, 3, "aggressive")
    assert training.hyperparameters(TrainOptions(), 5, None)["batch_size"] == 5
    with pytest.raises(InvalidInputError, match="unknown preset 'wild'"):
        training.hyperparameters(TrainOptions(preset="wild"), 10, None)
    with pytest.raises(InvalidInputError, match="epochs must be greater than 0"):
        training.hyperparameters(TrainOptions(epochs=0), 10, None)


def test_max_length_is_measured_on_the_data(tiny):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny)
    short = ["good"] * 50  # [CLS] good [SEP] = 3 tokens
    assert training.max_length_for(tokenizer, short) == 8
    long = ["good " * 30] * 10 + ["bad"] * 90  # the 98th percentile is the long text
    assert training.max_length_for(tokenizer, long) == 32
    assert training.max_length_for(tokenizer, ["good " * 1000], cap=64) == 64
    assert training.max_length_for(tokenizer, ["good " * 1000]) == 512
    assert training.max_length_for(tokenizer, []) == 128


def test_class_weights_rule():
    assert training.class_weights([0, 1, 0, 1, 2, 2], 3) is None  # balanced
    assert training.class_weights([0, 0, 1], 2) is None  # 2:1 is below 3:1
    weights = training.class_weights([0] * 9 + [1] * 3, 2)
    assert weights == pytest.approx([12 / 18, 12 / 6])
    assert training.class_weights([0] * 300 + [1], 3) == pytest.approx([301 / 600, 10.0, 1.0])
    rows = [[1, 0]] * 2 + [[0, 1]] * 8  # label 0: 8 negatives per 2 positives
    assert training.class_weights(rows, 2) == pytest.approx([4.0, 0.25])
    assert training.class_weights([[1, 0], [0, 1]], 2) is None


def test_training_arguments_use_transformers5_names(tmp_path):
    hp = training.hyperparameters(TrainOptions(), 100, None)
    args = training.training_arguments(tmp_path, hp, device="cpu", has_eval=True, seed=5)
    assert args.eval_strategy == "epoch" and args.save_strategy == "epoch"
    assert args.load_best_model_at_end and args.metric_for_best_model == "macro_f1"
    assert args.greater_is_better and args.warmup_steps == 0.1 and args.use_cpu
    assert args.report_to in ([], "none", ["none"]) and args.seed == 5
    assert args.train_sampling_strategy == "random" and not args.bf16 and not args.fp16
    args = training.training_arguments(tmp_path, dict(hp, warmup=20, grad_accum=4),
                                       device="cpu", has_eval=False, seed=5,
                                       group_by_length=True)
    assert args.eval_strategy == "no" and not args.load_best_model_at_end
    assert args.warmup_steps == 20 and args.gradient_accumulation_steps == 4
    assert args.train_sampling_strategy == "group_by_length"


def _datasets(tokenizer, n_train=16, n_eval=8):
    from datasets import Dataset

    def make(rows):
        enc = tokenizer([t for t, _ in rows], truncation=True, max_length=32)
        return Dataset.from_dict({**enc, "labels": [y for _, y in rows]})

    data = texts_and_labels(n_train + n_eval)
    return make(data[:n_train]), make(data[n_train:])


def test_oom_fallback_trains_a_tiny_bert_and_saves_a_pipeline_model(tiny, tmp_path):
    import torch
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer,
                              DataCollatorWithPadding, pipeline)

    tokenizer = AutoTokenizer.from_pretrained(tiny)
    train_data, eval_data = _datasets(tokenizer)
    hp = training.hyperparameters(TrainOptions(epochs=2, learning_rate=1e-3, batch_size=8),
                                  len(train_data), None)
    calls, messages = [], []
    checkpoints = tmp_path / "checkpoints"

    def compute_metrics(pred):
        logits, gold = pred
        return training.scalar_metrics(training.classification_scores(
            list(gold), list(logits.argmax(-1)), LABELS))

    def build(batch_size, grad_accum):
        calls.append((batch_size, grad_accum))
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_pretrained(tiny)
        args = training.training_arguments(
            checkpoints, dict(hp, batch_size=batch_size, grad_accum=grad_accum),
            device="cpu", has_eval=True, seed=0)
        trainer = training.WeightedLossTrainer(
            model=model, args=args, train_dataset=train_data, eval_dataset=eval_data,
            processing_class=tokenizer, data_collator=DataCollatorWithPadding(tokenizer),
            compute_metrics=compute_metrics,
            callbacks=training.standard_callbacks(True, messages.append),
            class_weights=[1.0, 2.0])
        if len(calls) == 1:
            def out_of_memory(**kwargs):
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            trainer.train = out_of_memory
        return trainer

    trainer = training.train_with_oom_fallback(build, hp["batch_size"], report=messages.append)
    assert calls == [(8, 1), (4, 2)]
    assert trainer.args.per_device_train_batch_size == 4
    assert trainer.args.gradient_accumulation_steps == 2
    assert messages[0].startswith("Out of memory: retrying with a batch of 4 and gradient "
                                  "accumulation 2")
    epochs = [m for m in messages if m.startswith("epoch ")]
    assert len(epochs) == 2 and "macro_f1" in epochs[0]
    assert trainer.state.best_metric is not None
    assert any("eval_macro_f1" in log for log in trainer.state.log_history)
    assert training.resume_checkpoint(TrainOptions(resume=True), checkpoints).endswith(
        f"checkpoint-{trainer.state.global_step}")
    assert training.resume_checkpoint(TrainOptions(resume=False), checkpoints) is False

    out = tmp_path / "model"
    training.save_hf_model(trainer.model, tokenizer, out, labels=LABELS)
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer_config.json"} <= names
    assert not [n for n in names if n.endswith(".bin")]
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "pos", "1": "neg"}
    classifier = pipeline("text-classification", model=str(out), device="cpu")
    assert classifier("the text is good")[0]["label"] in LABELS


def test_resuming_prints_no_transformers_argument_warning(tiny, tmp_path):
    """QA: '--resume' leaked "logging_steps: 0.05 (from args) != 1" from the Trainer, which
    stores 5% of the steps as a step count in the checkpoint."""
    import logging

    import torch
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer,
                              DataCollatorWithPadding)

    tokenizer = AutoTokenizer.from_pretrained(tiny)
    train_data, _ = _datasets(tokenizer)
    checkpoints = tmp_path / "checkpoints"
    seen = []

    class Catch(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    def run(epochs, resume):
        hp = training.hyperparameters(TrainOptions(epochs=epochs, batch_size=8), 16, None)
        torch.manual_seed(0)
        args = training.training_arguments(checkpoints, hp, device="cpu", has_eval=False,
                                           seed=0, resume_from=resume)
        trainer = training.WeightedLossTrainer(
            model=AutoModelForSequenceClassification.from_pretrained(tiny), args=args,
            train_dataset=train_data, processing_class=tokenizer,
            data_collator=DataCollatorWithPadding(tokenizer))
        trainer.train(resume_from_checkpoint=resume or None)
        return trainer

    assert training.training_arguments(tmp_path / "none", {"batch_size": 8, "epochs": 1,
                                                           "learning_rate": 1e-3},
                                       device="cpu", has_eval=False).logging_steps == 0.05
    run(1, False)
    resume = training.resume_checkpoint(TrainOptions(resume=True), checkpoints)
    assert resume
    # the step count the checkpoint logged at, whether named or found in the folder
    for given in (resume, None):
        args = training.training_arguments(checkpoints, {"batch_size": 8, "epochs": 2,
                                                         "learning_rate": 1e-3},
                                           device="cpu", has_eval=False, resume_from=given)
        assert args.logging_steps == 1
    handler = Catch(logging.WARNING)
    logger = logging.getLogger("transformers")
    logger.addHandler(handler)
    try:
        trainer = run(2, resume)
    finally:
        logger.removeHandler(handler)
    assert trainer.state.epoch == 2
    assert not [m for m in seen if "(from args)" in m], seen


def test_oom_fallback_gives_up_below_batch_one_and_passes_other_errors():
    import torch

    calls = []

    class Broke:
        def __init__(self, error):
            self.error = error

        def train(self, resume_from_checkpoint=None):
            raise self.error

    def always_oom(batch, accum):
        calls.append((batch, accum))
        return Broke(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried"))

    with pytest.raises(TrainingError, match="out of memory even with a batch of 1"):
        training.train_with_oom_fallback(always_oom, 4, report=lambda m: None)
    assert calls == [(4, 1), (2, 2), (1, 4)]
    with pytest.raises(ValueError, match="not memory"):
        training.train_with_oom_fallback(lambda b, a: Broke(ValueError("not memory")), 4)
    assert training.is_out_of_memory(torch.OutOfMemoryError("x"))
    assert training.is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated"))
    assert not training.is_out_of_memory(RuntimeError("shape mismatch"))


def test_weighted_loss_matches_weighted_cross_entropy(tiny, tmp_path):
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny).eval()
    args = training.training_arguments(tmp_path, training.hyperparameters(
        TrainOptions(), 4, None), device="cpu", has_eval=False, seed=0)
    trainer = training.WeightedLossTrainer(model=model, args=args, class_weights=[1.0, 3.0])
    inputs = {"input_ids": torch.tensor([[2, 5, 3], [2, 9, 3]]),
              "attention_mask": torch.ones(2, 3, dtype=torch.long),
              "labels": torch.tensor([0, 1])}
    with torch.no_grad():
        loss = trainer.compute_loss(model, dict(inputs))
        logits = model(input_ids=inputs["input_ids"],
                       attention_mask=inputs["attention_mask"]).logits
    expected = F.cross_entropy(logits, inputs["labels"], weight=torch.tensor([1.0, 3.0]))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert trainer.loss_is_scaled_for_ga is False
    from transformers.trainer_callback import PrinterCallback
    assert not [c for c in trainer.callback_handler.callbacks if isinstance(c, PrinterCallback)]


def test_mean_pooled_embeddings(tiny):
    texts = ["good", "the text is very bad", "good"]
    vectors = training.mean_pooled_embeddings(tiny, texts, batch_size=2, device="cpu")
    assert vectors.shape == (3, 32) and str(vectors.dtype) == "float32"
    assert [round(float((v ** 2).sum()), 4) for v in vectors] == [1.0, 1.0, 1.0]
    assert vectors[0] == pytest.approx(vectors[2], abs=1e-5)
    assert not math.isclose(float(vectors[0] @ vectors[1]), 1.0, abs_tol=1e-4)


def test_progress_callback_reports_eval_metrics(tmp_path):
    from transformers import TrainerControl, TrainerState

    seen = []
    callback = training.ProgressCallback(seen.append, enabled=False)
    state = TrainerState()
    state.epoch = 2.0
    callback.on_evaluate(None, state, TrainerControl(),
                         metrics={"eval_loss": 0.5, "eval_macro_f1": 0.75, "eval_runtime": 1.0,
                                  "epoch": 2.0})
    assert seen == ["epoch 2: loss 0.500, macro_f1 0.750"]


def test_main_process_and_collectives(monkeypatch, tmp_path):
    assert training.world_size() == 1 and training.is_main_process()
    assert training.broadcast_object({"a": 1}) == {"a": 1}
    training.barrier()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert not training.is_main_process()
    training.save_hf_model(object(), None, tmp_path / "not-written")
    assert not (tmp_path / "not-written").exists()
    monkeypatch.setenv("RANK", "0")
    assert training.is_main_process()


def test_checkpoint_dir(tmp_path):
    assert training.checkpoint_dir(TrainOptions(), tmp_path) == tmp_path / "checkpoints"
    options = TrainOptions(extra={"checkpoint_dir": str(tmp_path / "elsewhere")})
    assert training.checkpoint_dir(options, tmp_path) == tmp_path / "elsewhere"
    assert training.resume_checkpoint(TrainOptions(resume=True), tmp_path / "none") is False


def test_activation_rule():
    """doctagger.train.activation: when a new version replaces the active one."""
    from doctagger.train import ACTIVATING, activation

    scored = {"version": 1, "metrics": {"macro_f1": 0.6}}
    unscored = {"version": 1, "metrics": {"note": "no held-out split"}}
    good, bad = {"macro_f1": 0.7}, {"macro_f1": 0.2}
    assert activation(None, {}, False, False) == "first"  # even unmeasured
    assert activation(None, bad, True, True) == "first"  # even useless: nothing else to use
    assert activation(unscored, {}, False, False) == "replaced"
    assert activation(unscored, bad, True, True) == "replaced"
    assert activation(scored, {}, False, False) == "unmeasured"
    assert activation(scored, good, False, False) == "unmeasured"  # no held-out examples
    assert activation(scored, bad, True, True) == "learned-nothing"
    assert activation(scored, bad, True, False) == "replaced"  # worse, but it learned
    assert activation(scored, {"macro_f1": 0.65}, True, True) == "replaced"
    assert activation(scored, {"f1": 0.9}, True, True) == "learned-nothing"  # not comparable
    assert ACTIVATING == ("first", "replaced")


def test_resume_options_from_the_library(tmp_path):
    """Without the CLI's parameter sources, options that differ from the defaults count
    as given."""
    from doctagger.tasktypes import Task
    from doctagger.train import RUN_FILE, resume_options

    task = Task(name="topic", type="fake", labels=["a", "b"])
    options = TrainOptions(resume=True)
    assert resume_options(task, options, tmp_path) == (options, None)  # nothing saved
    saved = {**{k: None for k in ("base_model", "preset", "batch_size", "learning_rate",
                                  "weight_decay")},
             "method": "finetune", "epochs": 6.0, "max_length": 64, "seed": 42,
             "eval_fraction": 0.2}
    (tmp_path / RUN_FILE).write_text(json.dumps({"options": saved}))
    # interrupted before its first checkpoint: nothing to resume, this run's options stand
    assert resume_options(task, options, tmp_path) == (options, None)
    assert resume_options(task, TrainOptions(resume=True, max_length=128), tmp_path)[1] is None
    (tmp_path / "checkpoint-4").mkdir()
    (tmp_path / "checkpoint-4" / "trainer_state.json").write_text(json.dumps({"epoch": 2.0}))
    resumed, line = resume_options(task, options, tmp_path)
    assert (resumed.method, resumed.epochs, resumed.max_length) == ("finetune", 6.0, 64)
    assert line.startswith("Resuming topic: finetune, epoch 2 of 6, --max-length 64")
    with pytest.raises(TrainingError, match="--max-length 128 .the interrupted run had 64."):
        resume_options(task, TrainOptions(resume=True, max_length=128), tmp_path)


DISTRIBUTED_SCRIPT = r'''
import json, os, sys
from pathlib import Path
sys.path.insert(0, sys.argv[3])
os.environ["DOCTAGGER_LOAD_PLUGINS"] = ""
os.environ["DOCTAGGER_DEVICE"] = "cpu"
from tests.test_cli_train import FakeClassifier, FakePlugin
from doctagger import plugins, training
from doctagger.index import Index
from doctagger.tasktypes import TrainOptions, TrainResult
from doctagger.train import train_task

class TrainerClassifier(FakeClassifier):
    def train(self, task, train, evaluation, options, output_dir):
        from datasets import Dataset
        from transformers import (AutoModelForSequenceClassification, BertConfig,
                                  BertTokenizer, DataCollatorWithPadding)
        vocab = Path(sys.argv[2]) / "vocab.txt"
        tokenizer = BertTokenizer(vocab_file=str(vocab))
        labels = task.labels
        def data(rows):
            enc = tokenizer([e.text for e in rows], truncation=True, max_length=32)
            return Dataset.from_dict({**enc, "labels": [labels.index(e.value) for e in rows]})
        hp = training.hyperparameters(options, len(train), {"epochs": 2, "batch_size": 4})
        def build(batch, accum):
            config = BertConfig(vocab_size=40, hidden_size=32, num_hidden_layers=2,
                                num_attention_heads=2, intermediate_size=37,
                                max_position_embeddings=64, num_labels=2)
            model = AutoModelForSequenceClassification.from_config(config)
            args = training.training_arguments(
                training.checkpoint_dir(options, output_dir), dict(hp, batch_size=batch, grad_accum=accum),
                device="cpu", has_eval=bool(evaluation), metric="accuracy", seed=0)
            def metrics(p):
                return {"accuracy": float((p.predictions.argmax(-1) == p.label_ids).mean())}
            return training.WeightedLossTrainer(
                model=model, args=args, train_dataset=data(train), eval_dataset=data(evaluation),
                data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=metrics,
                callbacks=training.standard_callbacks(bool(evaluation), options.progress))
        trainer = training.train_with_oom_fallback(build, hp["batch_size"])
        training.save_hf_model(trainer.model, tokenizer, output_dir, labels=labels)
        # one write per line: with PYTHONUNBUFFERED, print() writes each piece on its own and
        # the two processes' pieces can interleave on the shared pipe
        sys.stdout.write(f"TRAINER {os.environ['RANK']} {trainer.args.world_size} {trainer.args.parallel_mode}\n")
        sys.stdout.flush()
        return TrainResult(metrics={"accuracy": trainer.state.best_metric or 0.0},
                           info={"method": "finetune", "device": "cpu"})

plugins.register_plugin(FakePlugin(TrainerClassifier()), "fake")
index = Index(sys.argv[1])
result = train_task(index, "topic", TrainOptions(progress=print))
sys.stdout.write(f"RESULT {os.environ['RANK']} " + json.dumps({"version": result["version"], "path": result["path"]}) + "\n")
sys.stdout.flush()
'''


@pytest.mark.slow
def test_two_processes_train_data_parallel_and_register_one_version(tmp_path):
    """torchrun --nproc_per_node 2 (gloo on CPU): the Trainer runs data-parallel through
    training_arguments, and only the main process registers the one version."""
    import subprocess
    import sys

    from doctagger.index import Index

    from tests.test_cli_train import corpus, make_task

    index_path = tmp_path / "index"
    with Index(index_path) as index:  # made before: two processes would race to create it
        make_task(index, docs=corpus())
    words = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "document", "passage", "about"]
             + list("abcdefghijklmnopqrstuvwxyz0123"))
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    (tmp_path / "run.py").write_text(DISTRIBUTED_SCRIPT)
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(tmp_path / "run.py"), str(index_path), str(tmp_path), str(REPO)],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # Found anywhere in the output: the two processes share one pipe, and the other one's
    # progress line (ended by \r, not \n) may come just before a line of these.
    trainers = sorted(re.findall(r"TRAINER \d \d ParallelMode\.\w+", done.stdout))
    assert trainers == ["TRAINER 0 2 ParallelMode.DISTRIBUTED",
                        "TRAINER 1 2 ParallelMode.DISTRIBUTED"]
    results = sorted(re.findall(r"RESULT (\d) (\{[^\n]*?\})", done.stdout))
    assert [r[1] for r in results] == [
        json.dumps({"version": 1, "path": str((index_path / "models/topic/v1").resolve())})] * 2
    assert [r[0] for r in results] == ["0", "1"]
    assert done.stdout.count("Training on 24 examples") == 1  # only the main process talks
    with Index(index_path) as index:
        assert index.scalar("select count(*) from models") == 1
    folder = index_path / "models" / "topic"
    assert sorted(p.name for p in folder.iterdir()) == ["v1"]
    assert (folder / "v1" / "model.safetensors").is_file()
