"""Fast batched inference shared by both predictors and the head's encoder.

- every text is tokenised once, without padding; a text longer than the model's window is
  read as overlapping windows (stride 64 tokens) whose outputs are averaged, so nothing is
  silently cut off;
- windows are sorted by length and batched, so a batch pads only to its own longest
  member (almost no wasted padding tokens);
- everything runs under ``torch.inference_mode``.
"""
from __future__ import annotations

import os
from typing import Callable, Sequence

STRIDE = 64

#: windows per forward pass. Measured on 2 CPU cores with MiniLM and ~200-token chunks
#: (docs/tagging.md): 8-16 ran 20-30 % faster than 64, in fp32 and in bf16 (smaller
#: activations stay in cache); a GPU wants large batches.
CPU_BATCH = 16
GPU_BATCH = 64
DEFAULT_BATCH = None  # by device: CPU_BATCH on a CPU, else GPU_BATCH


def default_batch(device: str) -> int:
    return CPU_BATCH if str(device).startswith("cpu") else GPU_BATCH


_threads_set = False


def use_all_cores() -> None:
    """Let torch use every core (once per process; torch defaults to fewer on some hosts)."""
    global _threads_set
    if _threads_set:
        return
    import torch

    n = os.cpu_count() or 1
    if torch.get_num_threads() < n:
        torch.set_num_threads(n)
    _threads_set = True


def quiet() -> None:
    """No weight-loading progress bars or "newly initialised" warnings from transformers."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def tokenize_windows(tokenizer, texts: Sequence[str], window: int):
    """(windows, owner): token-id lists no longer than ``window``, and the text each came from."""
    enc = tokenizer(list(texts), truncation=True, max_length=window,
                    return_overflowing_tokens=True, stride=min(STRIDE, window // 4),
                    padding=False)
    owner = enc.get("overflow_to_sample_mapping")
    if owner is None:  # slow tokenizers do not split: one window per text
        owner = list(range(len(texts)))
    return enc["input_ids"], list(owner)


def run_batched(input_ids: list[list[int]], pad_id: int, batch_size: int,
                forward: Callable) -> list:
    """Call ``forward(ids_tensor, mask_tensor) -> tensor (batch, k)`` on length-sorted
    batches; return one output row (a 1-D tensor) per window, in the input order."""
    import torch

    order = sorted(range(len(input_ids)), key=lambda i: len(input_ids[i]))
    out: list = [None] * len(input_ids)
    with torch.inference_mode():
        for start in range(0, len(order), max(1, batch_size)):
            idx = order[start:start + batch_size]
            width = max(len(input_ids[i]) for i in idx)
            ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                seq = input_ids[i]
                ids[row, :len(seq)] = torch.tensor(seq, dtype=torch.long)
                mask[row, :len(seq)] = 1
            result = forward(ids, mask).float()
            for row, i in enumerate(idx):
                out[i] = result[row]
    return out


def average_windows(rows: list, owner: list[int], n_texts: int):
    """Mean of the window rows of each text: a tensor (n_texts, k)."""
    import torch

    if n_texts == 0:
        return torch.zeros((0, 0))
    k = rows[0].shape[-1]
    total = torch.zeros((n_texts, k))
    count = torch.zeros((n_texts, 1))
    for row, i in zip(rows, owner):
        total[i] += row
        count[i] += 1
    return total / count.clamp(min=1)
