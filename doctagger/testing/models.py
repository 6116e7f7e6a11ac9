"""A tiny model: :func:`tiny_bert` writes a random two-layer BERT and its tokenizer to a
folder, for ``TrainOptions(base_model=...)``; torch and transformers load only when called."""
from __future__ import annotations

import os
import re
import string
from pathlib import Path
from typing import Iterable


def tiny_bert(path: str | os.PathLike, texts: Iterable[str] = (), *, layers: int = 2,
              hidden: int = 32, heads: int = 2, intermediate: int = 64,
              max_position: int = 512, seed: int = 0) -> Path:
    """Write a randomly initialised BERT encoder and its tokenizer to ``path``; return it.

    The WordPiece vocabulary holds the lower-cased words of ``texts`` plus every ASCII
    letter, digit and punctuation mark (and their ``##`` continuations), so any text
    tokenises with real offsets. Pass the folder as ``TrainOptions(base_model=...)``: a task
    type trains on it in seconds, offline. The weights are random, so do not expect a
    tiny model to learn much; it proves the plumbing, not the accuracy."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    words = sorted({w.lower() for t in texts for w in re.findall(r"\w+", t)} - set(chars))
    vocab = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words + chars
             + ["##" + c for c in string.ascii_lowercase + string.digits])
    tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(dict.fromkeys(vocab))})
    (path / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n", encoding="utf-8")
    config = BertConfig(vocab_size=len(tokenizer.get_vocab()), hidden_size=hidden,
                        num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=intermediate, max_position_embeddings=max_position)
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = BertModel(config)
    finally:
        torch.random.set_rng_state(state)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
