"""The tagging runtime of fine-tuned classifiers (plugins/doctagger_classification/runtime.py):
fp32, or int8/bf16 kept only when it agrees with fp32. A tiny random BERT, seconds."""
from __future__ import annotations

import json
import os

import pytest

from doctagger.errors import InvalidInputError
from doctagger.testing import tiny_bert

LABELS = ["invoice", "contract", "letter"]
TEXTS = ["payment amount due total invoice", "agreement party clause signed contract",
         "dear regards sincerely yours letter", "the invoice and the letter"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    base = tiny_bert(tmp_path_factory.mktemp("bert"), TEXTS)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=3, id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)})
    out = tmp_path_factory.mktemp("clf")
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return out


def _batch(n=8, width=12):
    import torch

    ids = torch.randint(5, 40, (n, width))
    mask = torch.ones_like(ids)
    mask[0, width // 2:] = 0
    return ids, mask


def _model(model_dir):
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(model_dir).eval()


class _Decisive:
    """A stand-in classifier with clear, varied answers: logits from the first tokens, so
    margins range from tiny to large (a tiny random BERT answers ~1/3 everywhere)."""

    def __call__(self, input_ids, attention_mask):
        import types

        x = input_ids[:, :3].float()
        return types.SimpleNamespace(logits=(x - x.mean(-1, keepdim=True)) / 4)


def test_mode_from_env_and_bad_value(monkeypatch):
    from doctagger_classification.runtime import requested_mode

    monkeypatch.delenv("DOCTAGGER_RUNTIME", raising=False)
    assert requested_mode() == "auto"
    monkeypatch.setenv("DOCTAGGER_RUNTIME", "Torch")
    assert requested_mode() == "torch"
    assert requested_mode("bf16") == "bf16"
    monkeypatch.setenv("DOCTAGGER_RUNTIME", "onnx")
    with pytest.raises(InvalidInputError, match="unknown runtime 'onnx'"):
        requested_mode()


def test_torch_mode_is_plain_fp32(model_dir):
    import torch

    from doctagger_classification.runtime import Runtime

    model = _model(model_dir)
    rt = Runtime(model, mode="torch")
    ids, mask = _batch()
    with torch.inference_mode():
        expected = model(input_ids=ids, attention_mask=mask).logits.softmax(-1)
        assert torch.equal(rt(ids, mask), expected)
    assert rt.name == "torch-fp32" and str(rt) == "torch-fp32"


@pytest.mark.parametrize("mode", ["int8", "bf16"])
def test_checking_returns_fp32_answers(model_dir, mode):
    import torch

    from doctagger_classification.runtime import Runtime

    model = _model(model_dir)
    rt = Runtime(model, mode=mode)
    assert rt.fast is not None and rt.name.endswith("(checking)")
    ids, mask = _batch()
    with torch.inference_mode():
        expected = model(input_ids=ids, attention_mask=mask).logits.softmax(-1)
        assert torch.equal(rt(ids, mask), expected)  # the check never changes an answer
    assert rt.checked == 8


def test_kept_when_it_agrees(model_dir):
    import torch

    from doctagger_classification import runtime

    model = _Decisive()
    rt = runtime.Runtime(_model(model_dir), mode="int8")
    rt.model = model
    calls = []

    def same(ids, mask):  # a "fast" path that answers exactly like fp32
        calls.append(len(ids))
        return model(input_ids=ids, attention_mask=mask).logits

    rt.fast, rt.fast_name = same, "torch-int8"
    with torch.inference_mode():
        while rt.checked < runtime.CHECK_ROWS:
            rt(*_batch())
        assert rt.name == "torch-int8" and "agreed with fp32" in rt.reason
        assert rt.recheck_margin == runtime.MIN_RECHECK_MARGIN  # it never differed
        before = len(calls)
        rt(*_batch())
    assert len(calls) == before + 1


def test_unclear_windows_are_run_again_in_fp32(model_dir):
    """After the check, a window whose margin is within the noise the check saw gets
    fp32's answer; a clear one keeps the fast answer."""
    import torch

    from doctagger_classification import runtime

    model = _Decisive()
    rt = runtime.Runtime(_model(model_dir), mode="int8")
    rt.model = model

    def fast(ids, mask):  # fp32 plus a small, fixed push towards label 0
        return model(input_ids=ids, attention_mask=mask).logits + torch.tensor([0.3, 0.0, 0.0])

    rt.fast, rt.fast_name = fast, "torch-int8"
    with torch.inference_mode():
        while rt.checked < runtime.CHECK_ROWS:
            rt(*_batch())
        assert rt.name == "torch-int8", rt.reason
        assert rt.recheck_margin > runtime.MIN_RECHECK_MARGIN  # it saw the push
        ids, mask = _batch(n=32)
        exact = model(input_ids=ids, attention_mask=mask).logits.softmax(-1)
        pushed = rt._probabilities(fast(ids, mask))
        unclear = runtime.margins(pushed, False, None) < rt.recheck_margin
        assert 0 < int(unclear.sum()) < 32  # some of each
        got = rt(ids, mask)
    assert rt.rechecked == int(unclear.sum())
    assert torch.allclose(got[unclear], exact[unclear], atol=1e-5)
    assert torch.equal(got[~unclear], pushed[~unclear])
    assert torch.equal(got.argmax(-1), exact.argmax(-1))  # no decision changed


def test_dropped_when_too_many_rows_would_run_again(model_dir):
    """A fast version whose answers agree but sit within the noise on most rows would run
    most of them twice: no faster than fp32, so it is dropped."""
    import torch

    from doctagger_classification import runtime

    model = _model(model_dir)  # a tiny random BERT: every margin close to 0
    rt = runtime.Runtime(model, mode="int8")
    rt.fast = lambda ids, mask: model(input_ids=ids, attention_mask=mask).logits
    with torch.inference_mode():
        while rt.checked < runtime.CHECK_ROWS:
            rt(*_batch())
    assert rt.fast is None and rt.name == "torch-fp32"
    assert "would have to run again in fp32" in rt.reason and "no faster" in rt.reason


def test_margins():
    import torch

    from doctagger_classification.runtime import margins

    probs = torch.tensor([[0.5, 0.3, 0.2], [0.9, 0.05, 0.05]])
    assert torch.allclose(margins(probs, False, None), torch.tensor([0.2, 0.85]))
    assert torch.allclose(margins(probs, True, [0.45, 0.5, 0.1]), torch.tensor([0.05, 0.05]))


def test_dropped_when_it_disagrees(model_dir):
    import torch

    from doctagger_classification import runtime

    model = _Decisive()
    rt = runtime.Runtime(_model(model_dir), mode="int8")
    rt.model = model

    def wrong(ids, mask):  # always the opposite of fp32's best label
        logits = model(input_ids=ids, attention_mask=mask).logits
        return -10 * logits

    rt.fast = wrong
    with torch.inference_mode():
        ids, mask = _batch()
        expected = model(input_ids=ids, attention_mask=mask).logits.softmax(-1)
        assert torch.equal(rt(ids, mask), expected)
        assert rt.fast is None and rt.name == "torch-fp32"
        assert "torch-int8 dropped" in rt.reason
        assert torch.equal(rt(ids, mask), expected)  # fp32 from then on


def test_multi_label_decisions():
    import torch

    from doctagger_classification.runtime import decisions

    probs = torch.tensor([[0.6, 0.2, 0.9]])
    assert decisions(probs, True, [0.5, 0.1, 0.95]).tolist() == [[1, 1, 0]]
    assert decisions(probs, False, None).tolist() == [[2]]


def test_predictor_uses_runtime_and_agrees(model_dir, monkeypatch):
    from doctagger_classification.predictor import HFPredictor

    plain = HFPredictor(model_dir, runtime="torch", device="cpu")
    fast = HFPredictor(model_dir, runtime="bf16", device="cpu")
    assert plain.runtime.name == "torch-fp32"
    assert [p.value for p in plain.predict(TEXTS)] == [p.value for p in fast.predict(TEXTS)]
    monkeypatch.setenv("DOCTAGGER_RUNTIME", "torch")
    assert HFPredictor(model_dir, device="cpu").runtime.name == "torch-fp32"
    assert HFPredictor(model_dir, quantize=True, device="cpu").runtime.fast_name == "torch-int8"


def test_tag_reports_the_runtime(invoke, model_dir, tmp_path, monkeypatch):
    from doctagger import registry
    from doctagger.index import Index

    docs = tmp_path / "docs"
    docs.mkdir()
    for i, text in enumerate(TEXTS):
        (docs / f"d{i}.txt").write_text(text + "\n")
    assert invoke("ingest", docs, "--ocr", "off").exit_code == 0
    assert invoke("tasks", "create", "kind", "--type", "classification",
                  "--labels", ",".join(LABELS)).exit_code == 0
    index = Index(os.environ["DOCTAGGER_INDEX"])
    version, tmp = registry.new_version_dir(index, "kind")
    for f in model_dir.iterdir():
        (tmp / f.name).write_bytes(f.read_bytes())
    registry.register_version(index, "kind", version, tmp, base_model=None, method="finetune",
                              params={}, data_fingerprint=None, metrics={}, info={})
    index.close()
    monkeypatch.setenv("DOCTAGGER_RUNTIME", "torch")
    result = invoke("tag", "kind", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["chunks"] == len(TEXTS) and summary["runtime"] == "torch-fp32"
    monkeypatch.setenv("DOCTAGGER_RUNTIME", "nope")
    result = invoke("tag", "kind", "--all")
    assert result.exit_code == 1 and "unknown runtime 'nope'" in result.output


# -- the head method: the same check, text by text -------------------------------------
WORDS = ["payment", "invoice", "contract", "party", "letter", "dear", "clause", "total",
         "signed", "regards", "amount", "sincerely"]
MANY = [" ".join(WORDS[(i * k) % len(WORDS)] for k in range(1, 4 + i % 5)) + f" item {i}"
        for i in range(150)]


@pytest.fixture(scope="module")
def head_dir(tmp_path_factory):
    """A saved head on a tiny random BERT, with large random weights: varied margins."""
    import numpy as np
    from transformers import AutoConfig

    from doctagger_classification import head

    base = tiny_bert(tmp_path_factory.mktemp("hbert"), MANY)
    dim = AutoConfig.from_pretrained(base).hidden_size
    rng = np.random.default_rng(0)
    out = tmp_path_factory.mktemp("head")
    head.save(out, rng.normal(size=(3, dim)) * 40, np.zeros(3), labels=LABELS,
              multi_label=False, encoder=None, encoder_path=str(base), max_length=32, info={})
    return out


def test_head_runtime_modes(head_dir, monkeypatch):
    from doctagger import runtime
    from doctagger_classification.predictor import HeadPredictor, load

    plain = HeadPredictor(head_dir, runtime="torch")
    assert plain.fast is None and str(plain.runtime) == "torch-fp32"
    assert plain.runtime.reason == "asked for"
    fast = HeadPredictor(head_dir, runtime="bf16")
    assert fast.fast is not None and fast.runtime.name == "torch-bf16 (checking)"
    monkeypatch.setattr(runtime, "bf16_supported", lambda: False)
    auto = HeadPredictor(head_dir).runtime
    assert str(auto) == "torch-fp32" and "no native bf16" in auto.reason  # no int8 unasked
    monkeypatch.setattr(runtime, "bf16_supported", lambda: True)
    assert str(HeadPredictor(head_dir).runtime) == "torch-bf16 (checking)"
    monkeypatch.setenv("DOCTAGGER_RUNTIME", "torch")
    assert str(load(head_dir).runtime) == "torch-fp32"


def test_head_checks_texts_then_runs_unclear_ones_again_in_fp32(head_dir):
    """The first CHECK_ROWS texts get fp32's answers; afterwards a text whose margin is
    within the noise the check saw is embedded again in fp32, a clear one keeps the fast
    answer; every decision is fp32's."""
    import torch

    from doctagger_classification import runtime
    from doctagger_classification.predictor import HeadPredictor

    exact = HeadPredictor(head_dir, runtime="torch").probabilities(MANY)
    pred = HeadPredictor(head_dir, runtime="bf16")
    encoder = pred.encoder
    push = torch.zeros(encoder.dim)
    push[0] = 0.02

    def fast(ids, mask):  # fp32 embeddings, slightly moved
        return torch.nn.functional.normalize(encoder._forward(ids, mask) + push, dim=-1)

    pred.fast = fast
    n = runtime.CHECK_ROWS
    first = pred.probabilities(MANY[:n - 10])  # two calls, the second one crosses the end
    assert torch.allclose(first, exact[:n - 10], atol=1e-5)  # fp32's answers meanwhile
    both = pred.probabilities(MANY[n - 10:n + 20])
    assert pred.runtime.checked == n and pred.runtime.name == "torch-bf16", pred.runtime.reason
    assert "texts with a margin under" in pred.runtime.reason
    assert torch.allclose(both[:10], exact[n - 10:n], atol=1e-5)
    assert pred.runtime.recheck_margin > runtime.MIN_RECHECK_MARGIN  # it saw the push
    rest = MANY[n:]
    moved = pred._head(encoder.embed(rest, batch_size=16, forward=fast), rest)
    unclear = runtime.margins(moved, False, None) < pred.runtime.recheck_margin
    assert 0 < int(unclear.sum()) < len(rest)  # some of each
    before = pred.runtime.rechecked
    got = pred.probabilities(rest)
    assert pred.runtime.rechecked - before == int(unclear.sum())
    assert torch.allclose(got[unclear], exact[n:][unclear], atol=1e-5)
    assert torch.allclose(got[~unclear], moved[~unclear], atol=1e-6)
    assert torch.equal(got.argmax(-1), exact[n:].argmax(-1))  # no decision changed


def test_head_runtime_dropped_when_it_disagrees(head_dir):
    import torch

    from doctagger_classification.predictor import HeadPredictor

    exact = HeadPredictor(head_dir, runtime="torch").probabilities(MANY[:20])
    pred = HeadPredictor(head_dir, runtime="bf16")
    pred.fast = lambda ids, mask: -pred.encoder._forward(ids, mask)  # the opposite answers
    assert torch.allclose(pred.probabilities(MANY[:20]), exact, atol=1e-5)
    assert pred.runtime.dropped and str(pred.runtime) == "torch-fp32"
    assert "torch-bf16 dropped" in pred.runtime.reason
    assert torch.allclose(pred.probabilities(MANY[:20]), exact, atol=1e-5)


def test_head_encoder_follows_the_device(head_dir, monkeypatch):
    """The head's encoder runs where training and tagging run (a GPU when there is one,
    or $DOCTAGGER_DEVICE); on a device other than the CPU the runtime is fp32."""
    import torch

    from doctagger.runtime import fast_version
    from doctagger_classification.encoder import Encoder
    from doctagger_classification.predictor import HeadPredictor

    monkeypatch.setenv("DOCTAGGER_DEVICE", "cpu")
    pred = HeadPredictor(head_dir, runtime="auto")
    assert pred.encoder.device == "cpu"
    assert next(pred.encoder.model.parameters()).device == torch.device("cpu")
    encoder = Encoder(pred.encoder.path, max_length=32, device="cpu")
    for mode in ("bf16", "int8"):  # as if on a GPU: no bf16/int8 autocast on the CPU
        forward, name, why = fast_version(encoder.model, mode, "cuda", lambda m, *a: None)
        assert forward is None and name is None and "on cuda the model runs in fp32" in why
    assert fast_version(encoder.model, "auto", "cuda:1", None)[2] == "fp32 on cuda:1"
    monkeypatch.setenv("DOCTAGGER_DEVICE", "tpu")
    with pytest.raises(InvalidInputError, match="DOCTAGGER_DEVICE"):
        HeadPredictor(head_dir)


def test_task_type_load_batches_windows_by_device(model_dir, head_dir, monkeypatch):
    """What `tag` loads runs CPU_BATCH windows a pass on a CPU (measured faster than 64
    there), unless a batch size is given."""
    from doctagger.plugins import get_task_type
    from doctagger_classification.predictor import CPU_BATCH, GPU_BATCH, default_batch

    monkeypatch.setenv("DOCTAGGER_DEVICE", "cpu")
    task_type = get_task_type("classification")
    assert task_type.load(None, model_dir).batch_size == CPU_BATCH
    assert task_type.load(None, head_dir).batch_size == CPU_BATCH
    assert task_type.load(None, model_dir, batch_size=5).batch_size == 5
    assert default_batch("cuda") == GPU_BATCH != CPU_BATCH


def test_auto_is_bf16_where_the_cpu_has_it_else_fp32(model_dir, monkeypatch):
    """One rule for every predictor (doctagger.runtime.resolve): int8 only when asked."""
    from doctagger import runtime
    from doctagger_classification.runtime import Runtime

    model = _model(model_dir)
    monkeypatch.setattr(runtime, "bf16_supported", lambda: False)
    rt = Runtime(model, mode="auto")
    assert rt.fast is None and str(rt) == "torch-fp32" and "no native bf16" in rt.reason
    monkeypatch.setattr(runtime, "bf16_supported", lambda: True)
    assert Runtime(model, mode="auto").fast_name == "torch-bf16"
    assert Runtime(model, mode="auto", device="cuda").fast is None
