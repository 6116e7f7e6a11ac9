"""Chunking and token counting, with the real default tokenizer (a file in an installed
package: no network, loads in milliseconds)."""
from __future__ import annotations

import pytest

from doctagger.chunking import (MAX_CHUNK_TOKENS, TokenCounter, check_chunk_tokens,
                                chunk_pages, clean_text, count_tokens, get_counter)
from doctagger.errors import InvalidInputError
from doctagger.extractors import ExtractedPage


@pytest.fixture(scope="module")
def counter():
    return get_counter()


def real_count(counter, text):
    return len(counter.tokenizer.encode(text).ids)


TRICKY = [
    "",
    "Hello, world!",
    "The patient's blood-pressure was 120/80 mmHg (normal).",
    "naïve café résumé Ünïcödé — “quotes” and ‘single’ … ellipsis",
    "日本語のテキストと漢字の混在。English mixed 中文",
    "مرحبا بالعالم وهذا نص عربي",
    "Ελληνικά κείμενα και русский текст",
    "https://example.com/some/long/path?query=value&other=thing#fragment",
    "aGVsbG8gd29ybGQgdGhpcyBpcyBiYXNlNjQgZW5jb2RlZCB0ZXh0IHdpdGggbm8gc3BhY2Vz" * 3,
    "x" * 150 + " " + "y" * 99,
    "Supercalifragilisticexpialidocious antidisestablishmentarianism",
    "tab\tseparated\nnew\r\nlines  and   spaces",
    "soft\u00adhyphen zero\u200bwidth no\u00a0break",
    "emoji 🙂👍🏽 and symbols ©®™ ±×÷ ≤≥",
    "……………………………………………………………………………………",
    "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x.y.z" * 4,
    "İstanbul ǅemal ß ﬁnance ﬂow",
    "\ufffd\ufffd broken \ufffd glyphs",
    "CamelCaseIdentifiersAndSnake_case_words plus 1234567890 and 3.14159",
]


@pytest.mark.parametrize("text", TRICKY)
def test_count_matches_the_tokenizer(counter, text):
    text = clean_text(text)
    assert counter.count(text) == real_count(counter, text)


def test_count_tokens_is_the_default_counter():
    assert count_tokens("Hello, world!") == 6  # [CLS] hello , world ! [SEP]


def test_ascii_fast_path_matches_the_tokenizer_on_many_words(counter):
    import random

    rng = random.Random(7)
    vocab = [w for w in counter.tokenizer.get_vocab() if w.isascii() and w.isalpha()]
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:!?'\"()-/#%&*+=<>@[]_{}|~`^$\\"
    words = [rng.choice(vocab) + rng.choice(vocab) for _ in range(300)]
    words += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40)))
              for _ in range(700)]
    assert counter._wordpiece is not None  # MiniLM's is a BERT WordPiece tokenizer
    fresh = TokenCounter(counter.tokenizer_file)
    for word in words:
        assert fresh._ascii_tokens(word) == len(
            counter.tokenizer.encode(word, add_special_tokens=False).ids), word


def test_clean_text_keeps_length_and_offsets():
    text = "a\x00b\x0cc\x85d\te\nf\ud800"
    cleaned = clean_text(text)
    assert len(cleaned) == len(text)
    assert cleaned == "a b c d\te\nf\ufffd"


def page(number, *paragraphs):
    return ExtractedPage.from_blocks(number, [(p, (10, 10 * i, 100, 10 * i + 5))
                                             for i, p in enumerate(paragraphs)])


def assert_well_formed(chunks, pages, max_tokens, counter):
    by_number = {p.number: p for p in pages}
    for c in chunks:
        text = by_number[c.page].text
        assert c.page_end == c.page
        assert c.text == text[c.char_start:c.char_end]
        assert c.tokens == counter.count(c.text) == real_count(counter, c.text)
        assert c.tokens <= max_tokens
        # never split mid-word: both ends sit on white space or on the page's edges
        assert c.char_start == 0 or text[c.char_start - 1].isspace()
        assert c.char_end == len(text) or text[c.char_end].isspace()
        assert c.text == c.text.strip()


def test_small_paragraphs_are_packed_into_one_chunk(counter):
    pages = [page(1, "First paragraph.", "Second one.", "Third.")]
    chunks = chunk_pages(pages, max_tokens=200)
    assert len(chunks) == 1
    assert chunks[0].text == "First paragraph.\n\nSecond one.\n\nThird."
    assert chunks[0].bbox == (10, 0, 100, 25)
    assert_well_formed(chunks, pages, 200, counter)


def test_chunks_never_cross_pages(counter):
    pages = [page(1, "On page one."), page(2, "On page two.")]
    chunks = chunk_pages(pages, max_tokens=200)
    assert [(c.page, c.text) for c in chunks] == [(1, "On page one."), (2, "On page two.")]


def test_packing_stops_before_the_limit(counter):
    para = "word " * 30  # 30 tokens
    pages = [page(1, *[para.strip()] * 10)]
    chunks = chunk_pages(pages, max_tokens=100)
    assert len(chunks) == 4  # 3 paragraphs (90 tokens + 2) per chunk
    assert [c.tokens for c in chunks] == [92, 92, 92, 32]
    assert_well_formed(chunks, pages, 100, counter)


def test_long_paragraph_is_cut_at_a_sentence_end(counter):
    sentence = "This sentence has exactly nine tokens in it."
    long_para = " ".join([sentence] * 40)
    pages = [page(1, long_para)]
    chunks = chunk_pages(pages, max_tokens=64)
    assert len(chunks) > 5
    for c in chunks[:-1]:
        assert c.text.endswith(".")
    assert " ".join(c.text for c in chunks) == long_para
    assert_well_formed(chunks, pages, 64, counter)


def test_paragraph_without_sentence_ends_is_cut_between_words(counter):
    para = " ".join(f"item{i}" for i in range(400))
    pages = [page(1, para)]
    chunks = chunk_pages(pages, max_tokens=50)
    assert " ".join(c.text for c in chunks) == para
    assert_well_formed(chunks, pages, 50, counter)


def test_a_word_longer_than_a_chunk_is_cut_inside(counter):
    word = "-".join(["abc"] * 300)  # one white-space free run of 599 tokens
    pages = [page(1, "Before it.", word, "After it.")]
    chunks = chunk_pages(pages, max_tokens=100)
    assert "".join(c.text for c in chunks if c.text not in ("Before it.", "After it.")) == word
    for c in chunks:
        assert c.tokens <= 100
        assert c.tokens == real_count(counter, c.text)
        assert c.text == pages[0].text[c.char_start:c.char_end]


def test_every_chunk_fits_the_window_at_the_largest_size(counter):
    text = " ".join(TRICKY * 20)
    pages = [page(1, clean_text(text))]
    chunks = chunk_pages(pages, max_tokens=MAX_CHUNK_TOKENS)
    assert_well_formed(chunks, pages, MAX_CHUNK_TOKENS, counter)


def test_chunk_size_is_checked():
    with pytest.raises(InvalidInputError, match="--chunk-tokens must be between 16 and 512"):
        check_chunk_tokens(513)
    with pytest.raises(InvalidInputError, match="between 16 and 512"):
        chunk_pages([page(1, "x")], max_tokens=8)


def test_page_from_text_keeps_offsets_into_the_given_text(counter):
    text = "  Intro line\nstill intro.\n\n\nSecond paragraph here.  \n\n  Third.\n"
    p = ExtractedPage.from_text(1, text)
    assert p.text == text
    assert [p.text[b.start:b.end] for b in p.blocks] == [
        "Intro line\nstill intro.", "Second paragraph here.", "Third."]
    chunks = chunk_pages([p], max_tokens=200)
    assert chunks[0].text == text[chunks[0].char_start:chunks[0].char_end]
    assert chunks[0].char_start == 2


def test_page_from_blocks_joins_with_blank_lines():
    p = ExtractedPage.from_blocks(3, [(" a\n", None), ("", None), ("b\x0c", (1, 2, 3, 4))])
    assert p.text == "a\n\nb"
    assert [(b.start, b.end, b.bbox) for b in p.blocks] == [(0, 1, None), (3, 4, (1, 2, 3, 4))]
