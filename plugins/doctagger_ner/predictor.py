"""Loading a trained NER model and predicting entity spans in batches of texts.

A prediction's value is the list of entity spans ``{"start", "end", "label", "score"}``
(character offsets into the text; ``score``: the mean confidence of the entity's words).
Its ``score`` is the weakest decision that matters in the text: the lowest entity score,
or, with no entity, the lowest confidence that a word is outside any entity (1.0 for a text
without words). Predictions are :class:`NERPrediction` objects, which add
``min_token_confidence``: the lowest confidence over all words, entity or not, which
``NERTaskType.uncertainty`` turns into 1 - that. ``scores`` stays None: it is reserved for
per-label probabilities, which a span list does not have.
"""
from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from doctagger.errors import PluginError
from doctagger.tasktypes import Prediction

from doctagger.runtime import Check, fast_version
from doctagger_ner import align

SETTINGS_FILE = "doctagger_ner.json"
#: windows per forward pass. On 2 CPU cores (MiniLM, 128-token windows, 2026-11-27):
#: 16 ran 11-18 % faster than 32 and 5-15 % faster than 8 (activations stay in cache)
CPU_BATCH = 16
GPU_BATCH = 32


@dataclass
class NERPrediction(Prediction):
    """A Prediction with the lowest word confidence of its text (for active learning)."""

    min_token_confidence: float = 1.0


@contextlib.contextmanager
def quiet_transformers():
    """No tqdm bars (weights loading, shard writing) and no warnings such as "newly
    initialized classifier" (expected here) while training: ProgressCallback is the bar."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def read_settings(model_dir: Path) -> dict:
    path = Path(model_dir) / SETTINGS_FILE
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    return {}


def pad_batch(windows: Sequence[align.Window], pad_id: int):
    """Tensors for a batch of windows, padded to the longest (dynamic padding)."""
    import torch

    n = max(len(w.input_ids) for w in windows)
    ids = torch.full((len(windows), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(windows), n), dtype=torch.long)
    types = torch.zeros((len(windows), n), dtype=torch.long)
    for i, w in enumerate(windows):
        k = len(w.input_ids)
        ids[i, :k] = torch.tensor(w.input_ids)
        mask[i, :k] = torch.tensor(w.attention_mask)
        if "token_type_ids" in w.extra:
            types[i, :k] = torch.tensor(w.extra["token_type_ids"])
    batch = {"input_ids": ids, "attention_mask": mask}
    if windows[0].extra.get("token_type_ids") is not None:
        batch["token_type_ids"] = types
    return batch


class NERPredictor:
    """``predict(texts) -> list[Prediction]``; see the module docstring."""

    def __init__(self, model_dir: Path, *, device: str | None = None,
                 batch_size: int | None = None, runtime: str | None = None):
        import torch
        from transformers import AutoModelForTokenClassification, AutoTokenizer

        model_dir = Path(model_dir)
        if not (model_dir / "config.json").is_file():
            raise PluginError(f"{model_dir} holds no Hugging Face model (config.json is "
                              "missing); train the task again")
        self.settings = read_settings(model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        if not getattr(self.tokenizer, "is_fast", False):
            raise PluginError(f"the tokenizer in {model_dir} is not a fast tokenizer, which "
                              "NER needs for character offsets; retrain with a model that "
                              "ships tokenizer.json")
        with quiet_transformers():
            self.model = AutoModelForTokenClassification.from_pretrained(str(model_dir))
        if device is None:
            from doctagger.training import choose_device

            device = choose_device()
        self.device = torch.device(device)
        self.model.to(self.device).eval()
        self.batch_size = int(batch_size or (CPU_BATCH if self.device.type == "cpu"
                                             else GPU_BATCH))
        config = self.model.config
        self.id2label = {int(k): v for k, v in config.id2label.items()}
        self.o_id = next((i for i, lab in self.id2label.items() if lab == "O"), None)
        limit = min(int(getattr(config, "max_position_embeddings", 512) or 512), 512)
        self.max_length = int(self.settings.get("max_length") or limit)
        self.stride = self.settings.get("stride")
        pad = self.tokenizer.pad_token_id
        self.pad_id = 0 if pad is None else int(pad)
        # bf16 (or int8) on a CPU, checked window by window against fp32 (doctagger.runtime)
        self.fast, fast_name, reason = fast_version(
            self.model, runtime, self.device.type, lambda model, batch: model(**batch).logits)
        self.runtime = Check(fast_name, rows="windows", reason=reason)

    def _probabilities(self, windows: list, fast: bool = False):
        """Softmax probabilities (numpy, windows x positions x labels) of a batch."""
        import torch

        batch = pad_batch(windows, self.pad_id)
        batch = {name: t.to(self.device) for name, t in batch.items()}
        logits = self.fast(batch) if fast else self.model(**batch).logits
        return torch.softmax(logits.float(), dim=-1).cpu().numpy()

    def window_probabilities(self, windows: list[align.Window]) -> dict[tuple[int, int], list]:
        """Softmax probabilities at every first sub-token: (window, position) -> vector.
        Windows run in length-sorted batches."""
        import torch

        out: dict[tuple[int, int], list] = {}
        order = sorted(range(len(windows)), key=lambda k: len(windows[k].input_ids))
        check = self.runtime
        with torch.inference_mode():
            for i in range(0, len(order), self.batch_size):
                ks = order[i:i + self.batch_size]
                group = [windows[k] for k in ks]
                positions = [[pos for pos, _ in w.firsts] for w in group]
                if check.dropped:
                    probs = self._probabilities(group)
                elif check.checking or check.auditing():  # both ways; fp32's answers used
                    probs = self._probabilities(group)
                    fast = self._probabilities(group, fast=True)
                    stats = [_compare_window(probs[r], fast[r], at)
                             for r, at in enumerate(positions)]
                    check.see(max(diff for diff, _, _ in stats))
                    check.tally([margin for _, margin, _ in stats],
                                [same or margin < check.recheck_margin
                                 for _, margin, same in stats])
                else:  # the fast version; its unclear windows again in fp32
                    probs = self._probabilities(group, fast=True)
                    redo = check.unclear([_margin(probs[r][at]) for r, at in
                                          enumerate(positions)])
                    if redo:
                        exact = self._probabilities([group[r] for r in redo])
                        for j, r in enumerate(redo):
                            probs[r, :exact.shape[1]] = exact[j]
                for row, k in enumerate(ks):
                    for pos, _word in windows[k].firsts:
                        out[(k, pos)] = probs[row, pos]
        return out

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        texts = list(texts)
        if not texts:
            return []
        windows, words = align.encode(self.tokenizer, texts, self.max_length, stride=self.stride)
        probs = self.window_probabilities(windows)
        groups = align.group_windows(windows, len(texts))
        results = []
        for t, numbers in enumerate(groups):
            def tag_of(k, pos):
                return self.id2label[int(probs[(k, pos)].argmax())]

            def conf_of(k, pos):
                return float(probs[(k, pos)].max())

            tags, confs = align.merge_tags(windows, numbers, len(words[t]), tag_of, conf_of)
            best = align.best_positions([windows[k] for k in numbers])
            spans = align.decode(words[t], tags, confs)
            for span in spans:
                span["score"] = round(span["score"], 6)
            if spans:
                score = min(s["score"] for s in spans)
            elif best and self.o_id is not None:
                score = min(float(probs[(numbers[j], pos)][self.o_id])
                            for j, pos in best.values())
            else:
                score = 1.0
            min_conf = min((confs[w] for w in best), default=1.0)
            results.append(NERPrediction(value=spans, score=round(float(score), 6),
                                         min_token_confidence=round(float(min_conf), 6)))
        return results


def _margin(probs) -> float:
    """The smallest gap between the two most probable labels over these positions
    (positions x labels): how close the window is to changing a word's tag."""
    if len(probs) == 0 or probs.shape[-1] < 2:
        return 1.0
    top = probs.copy()
    top.sort(axis=-1)
    return float((top[:, -1] - top[:, -2]).min())


def _compare_window(exact, fast, positions) -> tuple[float, float, bool]:
    """(largest probability difference, the fast version's margin, same tags) of one
    window over the positions that decide its words' tags."""
    if not positions:
        return 0.0, 1.0, True
    e, f = exact[positions], fast[positions]
    return (float(abs(e - f).max()), _margin(f),
            bool((e.argmax(-1) == f.argmax(-1)).all()))
