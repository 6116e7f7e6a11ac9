"""Label files: doctagger.formats (CSV/TSV, JSONL Prodigy/doccano, CoNLL), no database."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from doctagger.errors import (ImportFormatError, InvalidInputError, InvalidLabelError,
                              NotFoundError)
from doctagger.formats import (FORMATS, LabelFile, LabelRecord, detect_format, read_labels,
                               write_labels)
from doctagger.formats.conll_format import detect_scheme

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def put(tmp_path: Path, name: str, content, encoding="utf-8") -> Path:
    p = tmp_path / name
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_bytes(content.encode(encoding))
    return p


def bad(path, kind="class", fmt="auto", **kw) -> ImportFormatError:
    with pytest.raises(ImportFormatError) as ei:
        read_labels(path, fmt, kind=kind, **kw)
    return ei.value


def dump(records, fmt, kind, **kw) -> str:
    buf = io.StringIO(newline="")
    n = write_labels(records, buf, fmt, kind=kind, **kw)
    assert n == len(list(records))
    return buf.getvalue()


def essence(records):
    return [(r.text, r.path, r.value, r.meta) for r in records]


def sp(start, end, label):
    return {"start": start, "end": end, "label": label}


# ---------------------------------------------------------------- detect_format


@pytest.mark.parametrize("name,fmt", [
    ("a.csv", "csv"), ("a.TSV", "csv"), ("a.jsonl", "jsonl"), ("a.json", "jsonl"),
    ("a.ndjson", "jsonl"), ("a.conll", "conll"), ("a.conllu", "conll"), ("a.bio", "conll"),
    ("a.iob", "conll")])
def test_detect_format_by_suffix(name, fmt):
    assert detect_format(name) == fmt


def test_detect_format_sniffs_txt(tmp_path):
    assert detect_format(put(tmp_path, "a.txt", "-DOCSTART- -X- O O\n\nEU NNP B-NP I-ORG\n"
                             "rejects VBZ B-VP O\n")) == "conll"
    assert detect_format(put(tmp_path, "b.txt", "Apple\tB-corporation\nrose\tO\n")) == "conll"
    with pytest.raises(InvalidInputError, match="--format"):
        detect_format(put(tmp_path, "c.txt", "Sales rose 5 %@positive\n"))
    with pytest.raises(InvalidInputError, match="--format"):
        detect_format(tmp_path / "labels.xlsx")


def test_unknown_format_and_kind(tmp_path):
    p = put(tmp_path, "a.csv", "text,label\nx,y\n")
    with pytest.raises(InvalidInputError, match="format"):
        read_labels(p, "xml", kind="class")
    with pytest.raises(InvalidInputError, match="kind"):
        read_labels(p, kind="tags")
    with pytest.raises(NotFoundError):
        read_labels(tmp_path / "missing.csv", kind="class")
    assert FORMATS == ("csv", "jsonl", "conll")


# ---------------------------------------------------------------- CSV


def test_csv_single_label(tmp_path):
    p = put(tmp_path, "l.csv", 'text,label\nGreat movie,pos\n\n"Bad, really bad",neg\n')
    recs = read_labels(p, kind="class")
    assert isinstance(recs, LabelFile) and recs.format == "csv" and recs.encoding == "utf-8"
    assert recs == [LabelRecord(2, "pos", "Great movie"),
                    LabelRecord(4, "neg", "Bad, really bad")]
    assert recs.warnings == []


def test_csv_multi_label_and_custom_separator(tmp_path):
    p = put(tmp_path, "l.csv", "text,label\nheart and brain, neuro | cardio |neuro\nx,cardio\n")
    recs = read_labels(p, kind="classes")
    assert [r.value for r in recs] == [["cardio", "neuro"], ["cardio"]]
    p2 = put(tmp_path, "l2.csv", "text,label\nx,b;a\n")
    assert read_labels(p2, kind="classes", multi_label_separator=";")[0].value == ["a", "b"]
    e = bad(p, kind="class")
    assert e.line == 2 and "single-label" in str(e)


def test_csv_documents_sha256_and_meta(tmp_path):
    digest = "ab" * 32
    p = put(tmp_path, "d.csv", f"Path,Label,annotator\nreports/a.pdf,invoice,ann\n"
                               f"{digest},contract,\n")
    recs = read_labels(p, kind="class")
    assert recs[0] == LabelRecord(2, "invoice", None, "reports/a.pdf", {"annotator": "ann"})
    assert recs[1].path == digest and recs[1].text is None and recs[1].meta == {"annotator": ""}
    p2 = put(tmp_path, "s.csv", f"sha256,label\n{digest},x\n")
    assert read_labels(p2, kind="class")[0].path == digest


def test_csv_tsv(tmp_path):
    p = put(tmp_path, "l.tsv", "text\tlabel\nhas, commas\tpos\n")
    assert read_labels(p, kind="class")[0].text == "has, commas"
    p2 = put(tmp_path, "l.txt", "text\tlabel\nx\ty\n")  # sniffed from the header
    assert read_labels(p2, "csv", kind="class")[0].value == "y"


def test_csv_missing_columns(tmp_path):
    e = bad(put(tmp_path, "l.csv", "sentence,sentiment\nx,pos\n"))
    assert e.line == 1 and "text,label" in str(e) and "sentence,sentiment" in str(e)
    e = bad(put(tmp_path, "l2.csv", "text\nx\n"))
    assert e.line == 1 and "text,label" in str(e)
    e = bad(put(tmp_path, "l3.csv", "\n\n"))
    assert "empty" in str(e)
    e = bad(put(tmp_path, "l4.csv", "text,spans\nx,[]\n"), kind="class")
    assert "NER" in str(e)


def test_csv_wrong_column_count_and_empty_label(tmp_path):
    e = bad(put(tmp_path, "l.csv", "text,label\na,b\n\nhello, world,pos\n"))
    assert e.line == 4 and "expected 2 columns (text,label), found 3" in str(e)
    assert "quote" in str(e) and str(e).startswith(str(tmp_path / "l.csv") + ", line 4:")
    e = bad(put(tmp_path, "l2.csv", "text,label\na,b\nc, \n"))
    assert e.line == 3 and "empty 'label'" in str(e)
    e = bad(put(tmp_path, "l3.csv", "text,label\n,b\n"))
    assert e.line == 2 and "no text" in str(e)


def test_csv_multiline_cell_line_numbers(tmp_path):
    p = put(tmp_path, "l.csv", 'text,label\n"two\nlines",a\nthird,b\nfourth,\n')
    e = bad(p)
    assert e.line == 5
    recs = read_labels(put(tmp_path, "ok.csv", 'text,label\n"two\nlines",a\nthird,b\n'),
                       kind="class")
    assert [(r.line, r.text) for r in recs] == [(2, "two\nlines"), (4, "third")]


def test_csv_spans_column(tmp_path):
    p = put(tmp_path, "n.csv", 'text,spans\nApple rose,"[{""start"": 0, ""end"": 5, '
                               '""label"": ""ORG""}]"\nnothing,[]\nAda,"[[0,3,""PER""]]"\n')
    recs = read_labels(p, kind="spans")
    assert [r.value for r in recs] == [[sp(0, 5, "ORG")], [], [sp(0, 3, "PER")]]
    e = bad(put(tmp_path, "n2.csv", "text,spans\nApple,[{oops\n"), kind="spans")
    assert e.line == 2 and "not valid JSON" in str(e)
    e = bad(put(tmp_path, "n3.csv", 'text,spans\nApple,"[[0,9,""ORG""]]"\n'), kind="spans")
    assert "past the end" in str(e)


def test_csv_bad_quoting(tmp_path):
    e = bad(put(tmp_path, "l.csv", 'text,label\nok,a\n"unterminated,a\n'))
    assert e.line >= 3 and "quote" in str(e)


# ---------------------------------------------------------------- JSONL


def test_jsonl_label_variants(tmp_path):
    lines = [
        {"text": "a", "label": "pos"},
        {"text": "b", "label": ["neg"], "id": 7},            # doccano classification
        {"text": "c", "accept": ["neu"], "answer": "accept", "options": [{"id": "neu"}]},
        {"text": "d", "label": "pos", "answer": "reject"},   # Prodigy: skipped
        {"text": "e", "label": "pos", "answer": "ignore"},
        {"text": "f", "cats": {"pos": 0.9, "neg": 0.1}},
        {"path": "docs/x.pdf", "label": "neg"},
    ]
    p = put(tmp_path, "l.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n\n")
    recs = read_labels(p, kind="class")
    assert [r.value for r in recs] == ["pos", "neg", "neu", "pos", "neg"]
    assert recs[1].meta == {"id": 7} and recs[2].meta == {"options": [{"id": "neu"}]}
    assert recs[4].path == "docs/x.pdf" and recs[4].text is None and recs[4].line == 7
    assert recs.skipped == 2 and any("skipped 2" in w for w in recs.warnings)


def test_jsonl_multi_label(tmp_path):
    p = put(tmp_path, "m.jsonl", '{"text": "a", "accept": ["z", "b", "z"]}\n'
                                 '{"text": "b", "label": "solo"}\n'
                                 '{"text": "c", "label": ["x", "y"]}\n')
    assert [r.value for r in read_labels(p, kind="classes")] == [["b", "z"], ["solo"], ["x", "y"]]
    e = bad(p, kind="class")
    assert e.line == 1 and "single-label" in str(e)
    # An empty choice is "none of the labels" (Prodigy: accepted with nothing selected).
    empty = read_labels(put(tmp_path, "e.jsonl", '{"text": "a", "accept": []}\n'), kind="classes")
    assert [r.value for r in empty] == [[]]
    e = bad(put(tmp_path, "s.jsonl", '{"text": "a", "label": []}\n'), kind="class")
    assert "empty label list" in str(e)


def test_jsonl_prodigy_and_doccano_spans(tmp_path):
    text = "Apple hired Tim Cook"
    lines = [
        {"text": text, "spans": [{"start": 12, "end": 20, "label": "PER", "token_start": 2,
                                  "token_end": 3}, {"start": 0, "end": 5, "label": "ORG"}],
         "_input_hash": 1, "tokens": []},
        {"text": text, "label": [[0, 5, "ORG"], [12, 20, "PER"]]},                 # doccano
        {"text": text, "entities": [{"id": 3, "start_offset": 0, "end_offset": 5,
                                     "label": "ORG"}]},                           # doccano 1.x
        {"text": text, "spans": []},
    ]
    p = put(tmp_path, "n.jsonl", "\n".join(json.dumps(x) for x in lines))
    recs = read_labels(p, kind="spans")
    both = [sp(0, 5, "ORG"), sp(12, 20, "PER")]
    assert [r.value for r in recs] == [both, both, [sp(0, 5, "ORG")], []]
    assert recs[0].meta == {"_input_hash": 1, "tokens": []}


def test_jsonl_span_validation(tmp_path):
    def err(spans, text="Apple hired Tim"):
        p = put(tmp_path, "s.jsonl", '{"text": "x", "spans": []}\n' +
                json.dumps({"text": text, "spans": spans}) + "\n")
        e = bad(p, kind="spans")
        assert e.line == 2
        return str(e)

    assert "overlap" in err([sp(0, 5, "ORG"), sp(3, 9, "PER")])
    assert "past the end" in err([sp(0, 50, "ORG")])
    assert "integer" in err([{"start": "0", "end": 5, "label": "ORG"}])
    assert "integer" in err([{"start": 0.0, "end": 5, "label": "ORG"}])
    assert "empty or negative" in err([sp(5, 5, "ORG")])
    assert "no label" in err([{"start": 0, "end": 5, "label": ""}])
    assert "needs 'start'" in err([{"start": 0, "label": "ORG"}])
    # exact duplicates are merged, not an overlap
    p = put(tmp_path, "d.jsonl", json.dumps({"text": "Apple", "spans": [sp(0, 5, "O"),
                                                                         sp(0, 5, "O")]}))
    assert read_labels(p, kind="spans")[0].value == [sp(0, 5, "O")]


def test_jsonl_kind_mismatch(tmp_path):
    p = put(tmp_path, "s.jsonl", '{"text": "Apple", "spans": [{"start": 0, "end": 5, '
                                 '"label": "ORG"}]}\n')
    assert "NER" in str(bad(p, kind="class"))
    p = put(tmp_path, "d.jsonl", '{"text": "Apple", "label": [[0, 5, "ORG"]]}\n')
    assert "NER" in str(bad(p, kind="classes"))
    p = put(tmp_path, "c.jsonl", '{"text": "Apple", "label": "ORG"}\n')
    assert "classification" in str(bad(p, kind="spans"))


def test_jsonl_bad_lines(tmp_path):
    e = bad(put(tmp_path, "b.jsonl", '{"text": "a", "label": "x"}\n\n{"text": "b", label: 1}\n'))
    assert e.line == 3 and "invalid JSON" in str(e) and "column" in str(e)
    e = bad(put(tmp_path, "b2.jsonl", '{"text": "a", "label": "x"}\n["a", "x"]\n'))
    assert e.line == 2 and "JSON object" in str(e)
    e = bad(put(tmp_path, "b3.jsonl", '{"label": "x"}\n'))
    assert e.line == 1 and '"text"' in str(e)
    e = bad(put(tmp_path, "b4.jsonl", '{"text": "a"}\n'))
    assert "no label" in str(e)
    e = bad(put(tmp_path, "b5.jsonl", '{"text": "a", "label": "x", "answer": "maybe"}\n'))
    assert "answer" in str(e)


def test_json_array_file(tmp_path):
    p = put(tmp_path, "a.json", '[\n  {"text": "a", "label": "x"},\n\n  {"text": "b",\n'
                                '   "label": "y"}\n]\n')
    recs = read_labels(p, kind="class")
    assert [(r.line, r.value) for r in recs] == [(2, "x"), (4, "y")]
    e = bad(put(tmp_path, "b.json", '[\n {"text": "a", "label": "x"},\n {"text": }\n]'))
    assert e.line == 3
    assert "the file is empty" in str(bad(put(tmp_path, "e.json", "[]")))


# ---------------------------------------------------------------- CoNLL


def conll_spans(tmp_path, body, name="t.conll"):
    recs = read_labels(put(tmp_path, name, body), kind="spans")
    return recs, [(r.text, r.value) for r in recs]


def test_conll_bio(tmp_path):
    recs, got = conll_spans(tmp_path, "-DOCSTART-\tO\n\nEmpire\tB-loc\nState\tI-loc\nis\tO\n"
                                      "Ann\tB-per\nBob\tB-per\n\n\nok\tO\n")
    assert recs.scheme == "BIO" and recs.warnings == []
    assert got == [("Empire State is Ann Bob",
                    [sp(0, 12, "loc"), sp(16, 19, "per"), sp(20, 23, "per")]),
                   ("ok", [])]
    assert [r.line for r in recs] == [3, 10]


def test_conll_bio_lenient_i_after_o(tmp_path):
    recs, got = conll_spans(tmp_path, "a\tB-X\nb\tO\nc\tI-X\nd\tI-X\ne\tI-Y\n")
    assert recs.scheme == "BIO"
    assert got[0][1] == [sp(0, 1, "X"), sp(4, 7, "X"), sp(8, 9, "Y")]
    assert any("I-" in w for w in recs.warnings)


def test_conll_iob1(tmp_path):
    body = "Ann\tI-PER\nBob\tB-PER\nin\tO\nNew\tI-LOC\nYork\tI-LOC\nParis\tI-LOC\n"
    recs, got = conll_spans(tmp_path, body)
    assert recs.scheme == "IOB1" and recs.warnings == []
    assert got[0][1] == [sp(0, 3, "PER"), sp(4, 7, "PER"), sp(11, 25, "LOC")]


def test_conll_io_space_separated(tmp_path):
    body = ("-DOCSTART- -X- O O\n\nSILICON NNP - I-ORG\nVALLEY NNP - I-ORG\nBANK NNP - I-ORG\n"
            "Bing VBG - I-PER\nYu NNP - I-PER\nin IN - O\nSanta NNP - I-LOC\n"
            "Clara NNP - I-LOC\n")
    recs, got = conll_spans(tmp_path, body, "t.txt")
    assert recs.scheme == "IO" and recs.warnings == []
    assert got == [("SILICON VALLEY BANK Bing Yu in Santa Clara",
                    [sp(0, 19, "ORG"), sp(20, 27, "PER"), sp(31, 42, "LOC")])]


def test_conll_bioes(tmp_path):
    recs, got = conll_spans(tmp_path, "A\tS-X\nB\tB-Y\nC\tI-Y\nD\tE-Y\nE\tE-Y\nF\tO\n")
    assert recs.scheme == "BIOES"
    assert got[0][1] == [sp(0, 1, "X"), sp(2, 7, "Y"), sp(8, 9, "Y")]


def test_detect_scheme_direct():
    B, I, O = "B", "I", None
    assert detect_scheme([[(B, "X"), (I, "X")], [(O, None)]]) == "BIO"
    assert detect_scheme([[(I, "X"), (B, "X")]]) == "IOB1"
    assert detect_scheme([[(I, "X"), (B, "Y")]]) == "BIO"
    assert detect_scheme([[(I, "X"), (O, None), (I, "Y")]]) == "IO"
    assert detect_scheme([[(O, None)]]) == "BIO"
    assert detect_scheme([[("S", "X")]]) == "BIOES"


def test_conll_malformed(tmp_path):
    e = bad(put(tmp_path, "a.conll", "Ann\tB-PER\nis\tO\nhere\tX-FOO\n"), kind="spans")
    assert e.line == 3 and "X-FOO" in str(e)
    e = bad(put(tmp_path, "b.conll", "Ann\tB-PER\n\nlonely\n"), kind="spans")
    assert e.line == 3 and "one column" in str(e)
    e = bad(put(tmp_path, "c.conll", "Ann\tB-\n"), kind="spans")
    assert e.line == 1
    with pytest.raises(InvalidInputError, match="NER"):
        read_labels(put(tmp_path, "d.conll", "a\tO\n"), kind="class")


def test_conll_crlf(tmp_path):
    _, got = conll_spans(tmp_path, "Ann\tB-PER\r\nis\tO\r\n\r\nok\tO\r\n")
    assert got == [("Ann is", [sp(0, 3, "PER")]), ("ok", [])]


# ---------------------------------------------------------------- encodings


def test_utf8_bom(tmp_path):
    p = put(tmp_path, "b.csv", b"\xef\xbb\xbftext,label\r\ncaf\xc3\xa9,x\r\n")
    recs = read_labels(p, kind="class")
    assert recs.encoding == "utf-8-sig" and recs[0].text == "café" and recs.warnings == []
    p = put(tmp_path, "b.jsonl", b'\xef\xbb\xbf{"text": "a", "label": "x"}\n')
    assert read_labels(p, kind="class")[0].value == "x"


def test_latin1_fallback(tmp_path):
    p = put(tmp_path, "l.csv", "text,label\nok,x\nNestlé’s café,y\n", encoding="cp1252")
    recs = read_labels(p, kind="class")
    assert recs[1].text == "Nestlé’s café" and recs.encoding == "cp1252"
    assert len(recs.warnings) == 1 and "line 3" in recs.warnings[0]
    assert "UTF-8" in recs.warnings[0]
    # bytes cp1252 leaves undefined still read, as latin-1
    recs = read_labels(put(tmp_path, "m.jsonl", b'{"text": "a\x81", "label": "x"}\n'),
                       kind="class")
    assert recs.encoding == "latin-1" and recs[0].text == "a\x81"


def test_utf16_and_binary(tmp_path):
    p = put(tmp_path, "u.tsv", "text\tlabel\nÅsa\tx\n".encode("utf-16"))
    recs = read_labels(p, kind="class")
    assert recs.encoding == "utf-16" and recs[0].text == "Åsa"
    with pytest.raises(InvalidInputError, match="binary"):
        read_labels(put(tmp_path, "x.csv", b"%PDF\x00\x01"), kind="class")


@pytest.mark.parametrize("name, content", [
    ("e.jsonl", "\n\n"), ("e.jsonl", ""), ("e.conll", "\n\n"), ("d.conll", "-DOCSTART- O\n\n"),
    ("e.csv", ""), ("e.csv", "\n \n"), ("h.csv", "text,spans\n\n")])
def test_empty_files_are_an_error_in_every_format(tmp_path, name, content):
    """A label file with no record is most likely a mistake: one error, whatever the format
    (it was an error for CSV and only a warning for JSONL and CoNLL)."""
    e = bad(put(tmp_path, name, content), kind="spans")
    assert e.line is None and "the file is empty" in str(e)
    assert str(e).startswith(str(tmp_path / name) + ": the file is empty")
    assert "\n" not in str(e)


def test_all_records_rejected_is_not_empty(tmp_path):
    p = put(tmp_path, "r.jsonl", '{"text": "a", "label": "x", "answer": "reject"}\n')
    recs = read_labels(p, kind="class")
    assert recs == [] and recs.skipped == 1 and "no labelled records" in recs.warnings[-1]


# ---------------------------------------------------------------- writing and round trips

CLASS_RECS = [LabelRecord(1, "pos", "Great, \"really\" great", meta={"id": "1"}),
              LabelRecord(2, "neg", "naïve\nline two", meta={"id": "2"})]
MULTI_RECS = [LabelRecord(1, ["cardio", "neuro"], "heart and brain"),
              LabelRecord(2, ["neuro"], "brain")]
DOC_RECS = [LabelRecord(1, "invoice", path="a/b.pdf"), LabelRecord(2, "memo", path="ab" * 32)]
SPAN_RECS = [LabelRecord(1, [sp(0, 5, "ORG"), sp(12, 20, "PER")], "Apple hired Tim Cook"),
             LabelRecord(2, [], "nothing here"),
             LabelRecord(3, [sp(0, 6, "LOC")], "Zürich , Switzerland")]


def test_write_csv():
    assert dump(CLASS_RECS, "csv", "class") == (
        'text,label,id\n"Great, ""really"" great",pos,1\n"naïve\nline two",neg,2\n')
    assert dump(MULTI_RECS, "csv", "classes") == (
        "text,label\nheart and brain,cardio|neuro\nbrain,neuro\n")
    assert dump(MULTI_RECS, "csv", "classes", multi_label_separator=";").splitlines()[1] == (
        "heart and brain,cardio;neuro")
    assert dump(DOC_RECS, "csv", "class").startswith("path,label\na/b.pdf,invoice\n")
    assert dump(SPAN_RECS[:1], "tsv", "spans") == (
        'text\tspans\nApple hired Tim Cook\t'
        '"[{""start"":0,""end"":5,""label"":""ORG""},'
        '{""start"":12,""end"":20,""label"":""PER""}]"\n')


def test_write_jsonl():
    out = dump(CLASS_RECS[1:] + DOC_RECS[:1], "jsonl", "class")
    assert out == ('{"text": "naïve\\nline two", "label": "neg", "id": "2"}\n'
                   '{"path": "a/b.pdf", "label": "invoice"}\n')
    assert dump(SPAN_RECS[:1], "jsonl", "spans") == (
        '{"text": "Apple hired Tim Cook", "spans": [{"start": 0, "end": 5, "label": "ORG"}, '
        '{"start": 12, "end": 20, "label": "PER"}]}\n')
    assert dump(MULTI_RECS[:1], "jsonl", "classes") == (
        '{"text": "heart and brain", "label": ["cardio", "neuro"]}\n')


def test_write_conll():
    assert dump(SPAN_RECS, "conll", "spans") == (
        "Apple\tB-ORG\nhired\tO\nTim\tB-PER\nCook\tI-PER\n\nnothing\tO\nhere\tO\n\n"
        "Zürich\tB-LOC\n,\tO\nSwitzerland\tO\n\n")


def test_write_errors():
    with pytest.raises(InvalidInputError, match="-DOCSTART-.*export as jsonl"):
        dump([LabelRecord(1, [sp(0, 3, "ORG")], "Bob -DOCSTART- x")], "conll", "spans")
    with pytest.raises(InvalidInputError, match="^record 1 .line 7.: the text holds"):
        dump([LabelRecord(7, [], "-DOCSTART-")], "conll", "spans")
    with pytest.raises(InvalidInputError, match="^/d/a.pdf, page 2, chunk 9: the entity label"):
        dump([LabelRecord(0, [sp(0, 3, "A B")], "Bob", origin="/d/a.pdf, page 2, chunk 9")],
             "conll", "spans")
    with pytest.raises(InvalidInputError, match="NER"):
        dump(CLASS_RECS, "conll", "class")
    with pytest.raises(InvalidLabelError):
        dump([LabelRecord(1, ["a", "b"], "x")], "csv", "class")
    with pytest.raises(InvalidLabelError, match="separator"):
        dump([LabelRecord(1, ["a|b"], "x")], "csv", "classes")
    with pytest.raises(InvalidLabelError, match="overlap"):
        dump([LabelRecord(1, [sp(0, 3, "A"), sp(2, 4, "B")], "abcd")], "jsonl", "spans")
    with pytest.raises(InvalidInputError, match="no text and no path"):
        dump([LabelRecord(1, "x")], "jsonl", "class")
    with pytest.raises(InvalidInputError, match="meta"):
        dump([LabelRecord(1, "x", "t", meta={"label": "y"})], "csv", "class")
    with pytest.raises(InvalidInputError, match="meta"):
        dump([LabelRecord(1, "x", "t", meta={"answer": "reject"})], "jsonl", "class")


def test_write_conll_splits_tokens_at_span_edges(tmp_path):
    """A span need not fall on white space: the token is cut at the span's start and end,
    as the terminal UI's "+ United States = LOC" marks a word without its full stop."""
    text = "He moved to the United States. (Acme)Corp sued."
    spans = [sp(16, 29, "LOC"), sp(32, 36, "ORG"), sp(37, 41, "ORG")]
    out = dump([LabelRecord(0, spans, text)], "conll", "spans")
    assert out == ("He\tO\nmoved\tO\nto\tO\nthe\tO\nUnited\tB-LOC\nStates\tI-LOC\n.\tO\n"
                   "(\tO\nAcme\tB-ORG\n)\tO\nCorp\tB-ORG\nsued.\tO\n\n")
    # Read back: the same entities on the same words, in text with the tokens spaced out.
    back = read_labels(put(tmp_path, "x.conll", out), kind="spans")
    assert back[0].text == "He moved to the United States . ( Acme ) Corp sued."
    assert [(back[0].text[s["start"]:s["end"]], s["label"]) for s in back[0].value] == [
        ("United States", "LOC"), ("Acme", "ORG"), ("Corp", "ORG")]
    # Adjacent spans of one type inside one word stay two entities; a span that starts or
    # ends in white space covers the words in it; a span of white space only is left out.
    out = dump([LabelRecord(0, [sp(0, 4, "ORG"), sp(4, 8, "ORG"), sp(8, 14, "PER"),
                                sp(14, 15, "LOC")], "AcmeCorp  Bob  x")], "conll", "spans")
    assert out == "Acme\tB-ORG\nCorp\tB-ORG\nBob\tB-PER\nx\tO\n\n"


def test_describe_values_as_json():
    from doctagger.formats.base import describe

    assert [describe(v) for v in (None, True, 3, 2.5, "3", [1, 2], [], {"a": 1})] == [
        "null", "true", "a number 3", "a number 2.5", 'a string "3"', "a list [1, 2]",
        "an empty list []", 'an object {"a": 1}']
    assert describe(["x" * 100]).endswith("...") and len(describe(["x" * 100])) < 80


@pytest.mark.parametrize("line, message", [
    ('{"text": "a", "label": null}', "a label must be a string (in double quotes), found null"),
    ('{"text": "a", "label": 3}', "found a number 3"),
    ('{"text": "a", "label": [1, 2]}', "found a number 1 in [1, 2]"),
    ('{"text": "a", "label": {"x": 1}}', 'found an object {"x": 1}'),
    ('{"text": 5, "label": "x"}', '"text" must be a string, found a number 5'),
    ('"just text"', 'expected a JSON object {...}, found a string "just text"'),
    ('[{"text": "a", "label": "x"}, [1, 2]]', "expected a JSON object {...}, found a list [1, 2]"),
])
def test_value_messages_describe_json_not_python(tmp_path, line, message):
    e = bad(put(tmp_path, "v.jsonl", line + "\n"))
    assert message in str(e)
    assert not any(python in str(e) for python in ("NoneType", " int", "dict", "None"))


def test_span_value_messages_describe_json(tmp_path):
    def err(spans):
        return str(bad(put(tmp_path, "s.jsonl", json.dumps({"text": "abcdef", "spans": spans})),
                       kind="spans"))

    assert "start must be an integer character offset, found null" in err(
        [{"start": None, "end": 2, "label": "X"}])
    assert 'found a string "0"' in err([{"start": "0", "end": 2, "label": "X"}])
    assert "has no label (found a number 7)" in err([[0, 2, 7]])
    assert "span 1 is a number 5" in err([5])
    assert "spans must be a list" in err({"start": 0}) and 'found an object' in err({"a": 1})
    e = bad(put(tmp_path, "m.jsonl", '{"text": "a", "labels": 3}\n'), kind="classes")
    assert 'labels must be a list of strings such as ["a", "b"], found a number 3' in str(e)


def test_conll_records_keep_each_entity_line(tmp_path):
    recs = read_labels(put(tmp_path, "l.conll", "-DOCSTART- O\n\nBob\tB-PER\nsaw\tO\n"
                                                "Acme\tB-ORG\nCorp\tI-ORG\n\nx\tO\n"), kind="spans")
    assert [(r.line, r.span_lines) for r in recs] == [(3, [3, 5]), (8, [])]


ROUND_TRIPS = [
    ("csv", "class", CLASS_RECS), ("csv", "classes", MULTI_RECS), ("csv", "class", DOC_RECS),
    ("csv", "spans", SPAN_RECS), ("tsv", "class", CLASS_RECS),
    ("jsonl", "class", CLASS_RECS), ("jsonl", "classes", MULTI_RECS),
    ("jsonl", "class", DOC_RECS), ("jsonl", "spans", SPAN_RECS),
    ("conll", "spans", SPAN_RECS),
]


@pytest.mark.parametrize("fmt,kind,records", ROUND_TRIPS)
def test_round_trip(tmp_path, fmt, kind, records):
    first = dump(records, fmt, kind)
    p = put(tmp_path, "labels." + fmt, first)
    back = read_labels(p, kind=kind)
    assert essence(back) == essence(records)
    assert dump(back, fmt, kind) == first


def test_round_trip_mixed_meta_and_records(tmp_path):
    recs = [LabelRecord(1, "a", "one", meta={"score": 0.5}),
            LabelRecord(2, "b", "two", "doc.pdf", meta={"id": 3, "extra": {"k": [1]}})]
    for fmt in ("csv", "jsonl"):
        first = dump(recs, fmt, "class")
        back = read_labels(put(tmp_path, "m." + fmt, first), kind="class")
        assert dump(back, fmt, "class") == first
        again = read_labels(put(tmp_path, "m2." + fmt, dump(back, fmt, "class")), kind="class")
        assert essence(again) == essence(back)
    assert essence(read_labels(tmp_path / "m.jsonl", kind="class")) == essence(recs)


# ---------------------------------------------------------------- real data sets

needs_data = pytest.mark.skipif(not DATA.is_dir(),
                                reason=f"shared data sets not found at {DATA}")


@needs_data
def test_real_wnut17_train(tmp_path):
    path = DATA / "ner" / "wnut17" / "train.conll"
    recs = read_labels(path, kind="spans")
    assert detect_format(path) == "conll"
    assert len(recs) == 3394  # README: train 3,394 sentences
    assert recs.scheme == "BIO" and recs.encoding == "utf-8"
    labels = {s["label"] for r in recs for s in r.value}
    assert labels == {"person", "location", "group", "corporation", "product", "creative-work"}
    n = sum(len(r.value) for r in recs)
    assert 1500 < n < 2500  # one entity per B- tag: 1,975
    for r in recs[:200]:
        for s in r.value:
            assert r.text[s["start"]:s["end"]].strip() == r.text[s["start"]:s["end"]]
    out = dump(recs, "conll", "spans")
    again = read_labels(put(tmp_path, "w.conll", out), kind="spans")
    assert essence(again) == essence(recs) and dump(again, "conll", "spans") == out


@needs_data
def test_real_sec_filings_train():
    path = DATA / "ner" / "sec_filings_finance" / "train_FIN5.txt"
    assert detect_format(path) == "conll"
    recs = read_labels(path, kind="spans")
    assert len(recs) == 1164  # README: train 1,164 sentences
    assert recs.scheme == "IO" and recs.warnings == []
    labels = {s["label"] for r in recs for s in r.value}
    assert labels <= {"PER", "ORG", "LOC", "MISC"} and {"PER", "ORG", "LOC"} <= labels
    n = sum(len(r.value) for r in recs)
    assert 800 < n < 1530  # fewer entities than I- tokens (1,530): adjacent ones merge
    first = recs[0]
    got = {first.text[s["start"]:s["end"]] for s in first.value}
    assert "SILICON VALLEY BANK" in got


@needs_data
def test_real_latin1_and_wrong_csv():
    from doctagger.formats.encoding import read_text
    fp = DATA / "classification" / "financial_phrasebank"
    assert read_text(fp / "Sentences_AllAgree.txt").encoding == "utf-8"
    latin = read_text(fp / "Sentences_50Agree.txt")
    assert latin.encoding in ("cp1252", "latin-1") and latin.warnings
    assert latin.text.count("@") >= 4846
    with pytest.raises(InvalidInputError, match="--format"):
        detect_format(fp / "Sentences_AllAgree.txt")
    e = bad(DATA / "classification" / "medical_abstracts" / "medical_tc_test.csv")
    assert e.line == 1 and "condition_label,medical_abstract" in str(e)
