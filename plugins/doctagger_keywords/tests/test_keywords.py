"""doctagger-keywords: the rules, the task type (through doctagger's conformance kit) and
the commands, end to end from PDFs to `search --tag`."""
from __future__ import annotations

import json

import pytest

from doctagger.errors import InvalidInputError, InvalidLabelError
from doctagger.tasktypes import ChunkPrediction, Example, Prediction, Task, TrainOptions
from doctagger.testing import check_task_type, sample_examples

from doctagger_keywords.rules import Rule, parse_rules, split_terms
from doctagger_keywords.suggest import suggest_rules
from doctagger_keywords.tasktype import KeywordsTaskType, rules_for

TEXT = ("Please pay the attached Invoice no. 42 for the tax\nbill of one billion dollars. "
        "Myocardial infraction noted in the patient's record.")


# -- rules --------------------------------------------------------------------------------
@pytest.mark.parametrize("rule, matches", [
    (Rule("bill"), True),
    (Rule("bil"), False),  # whole words only
    (Rule("dollar"), False),
    (Rule("cheque bill"), True),  # any: one word is enough
    (Rule("cheque bill", "all"), False),  # all: every word
    (Rule('invoice "tax bill"', "all"), True),  # a quoted phrase, across a line break
    (Rule("tax bill", "exact"), True),
    (Rule("bill tax", "exact"), False),
    (Rule(r"no\.\s*\d+", "regex"), True),
    (Rule(r"no\.\s*\d{3}", "regex"), False),
    (Rule("myocardial infarction", "fuzzy"), True),  # one transposed letter
    (Rule("myocardial infarction", "fuzzy", threshold=0.99), False),
    (Rule("cardiac arrest", "fuzzy"), False),
    (Rule("invoice", case_sensitive=True), False),
    (Rule("Invoice", case_sensitive=True), True),
])
def test_matching_algorithms(rule, matches):
    score, found = rule.find(TEXT)
    assert (score > 0) is matches, (rule, score, found)
    assert bool(found) is matches
    assert 0.0 <= score <= 1.0


def test_terms_and_symbols():
    assert split_terms('invoice "tax  bill" x') == ["invoice", "tax bill", "x"]
    assert Rule("C++").find("we write C++ daily")[1] == ["C++"]
    assert Rule("C++").score("we write C daily") == 0.0


@pytest.mark.parametrize("data, message", [
    ({"match": "(", "algorithm": "regex"}, "bad regular expression"),
    ({"match": "x", "algorithm": "sometimes"}, "unknown matching algorithm"),
    ({"match": "  "}, "non-empty match"),
    ({"match": "x", "algorithm": "fuzzy", "threshold": 0.1}, "out of range"),
    ({"match": "x", "colour": "red"}, "unknown keys"),
    (42, "a match string or an object"),
])
def test_bad_rules_are_refused_with_a_reason(data, message):
    with pytest.raises(InvalidInputError, match=message):
        Rule.from_dict(data)


def test_rules_round_trip_and_refuse_unknown_labels():
    rules = parse_rules({"a": "x y", "b": {"match": "z", "algorithm": "fuzzy"}}, ["a", "b"])
    assert {k: Rule.from_dict(r.to_dict()) for k, r in rules.items()} == rules
    with pytest.raises(InvalidInputError, match="'c' is not a label"):
        parse_rules({"c": "x"}, ["a", "b"])


# -- the task type, through the conformance kit ------------------------------------------------
LABELS = ["invoice", "receipt", "contract"]
RULES = {"rules": {label: {"match": label, "algorithm": "any"} for label in LABELS}}


@pytest.mark.parametrize("multi_label", [False, True])
@pytest.mark.parametrize("level", ["chunk", "document"])
def test_conformance(tmp_path, multi_label, level):
    report = check_task_type(KeywordsTaskType, labels=LABELS, tmp_path=tmp_path,
                             multi_label=multi_label, level=level, task_options=RULES)
    report.assert_ok()
    assert [s.name for s in report.steps if s.status == "skipped"] == ["train"]


def test_conformance_reports_a_task_without_rules(tmp_path):
    report = check_task_type(KeywordsTaskType, labels=LABELS, tmp_path=tmp_path)
    assert not report.ok
    assert any("load: raised InvalidInputError" in p and "has no keyword rules" in p
               for p in report.problems)


def _task(multi_label=False, level="chunk", rules=None):
    return Task(name="mail", type="keywords", labels=LABELS, multi_label=multi_label,
                level=level, options={"rules": rules or {}}, id=1)


def test_validate():
    tt = KeywordsTaskType()
    assert tt.validate(_task(), ["receipt"]) == "receipt"
    assert tt.validate(_task(multi_label=True), "receipt, invoice") == ["invoice", "receipt"]
    assert tt.validate(_task(multi_label=True), []) == []
    with pytest.raises(InvalidLabelError, match="unknown label 'memo'.*use one of: invoice"):
        tt.validate(_task(), "memo")
    with pytest.raises(InvalidLabelError, match=r"unknown label\(s\) memo"):
        tt.validate(_task(multi_label=True), ["memo", "invoice"])
    with pytest.raises(InvalidLabelError, match="contains ','"):
        tt.check_labels(["a,b", "c"], multi_label=False, level="chunk")


def test_predict_single_and_multi_label(tmp_path):
    rules = {"invoice": "invoice", "receipt": {"match": "recieved payment", "algorithm": "fuzzy"},
             "contract": "invoice"}
    texts = ["Invoice 7, received payment", "nothing to see", "an invoice"]
    single = KeywordsTaskType().load(_task(rules=rules), tmp_path).predict(texts)
    assert [p.value for p in single] == ["invoice", None, "invoice"]  # ties: first label
    assert single[1].score == 0.0 and single[0].score == 1.0
    multi = KeywordsTaskType().load(_task(True, rules=rules), tmp_path).predict(texts)
    assert multi[0].value == ["contract", "invoice", "receipt"]
    assert 0.85 <= multi[0].score < 1.0  # the weakest match: the fuzzy one
    assert multi[1].value == [] and multi[1].score == 0.0
    assert multi[0].scores["receipt"] == pytest.approx(multi[0].score)


def test_rules_json_in_the_model_folder_wins(tmp_path):
    (tmp_path / "rules.json").write_text(json.dumps({"rules": {"receipt": "paid"}}))
    task = _task(rules={"invoice": "paid"})
    assert list(rules_for(task, tmp_path)) == ["receipt"]
    assert KeywordsTaskType().load(task, tmp_path).predict(["paid"])[0].value == "receipt"


def test_rollup():
    tt = KeywordsTaskType()

    def item(chunk_id, value, score=1.0):
        return ChunkPrediction(chunk_id, page=chunk_id, text="", prediction=Prediction(value, score))

    items = [item(1, ["invoice"]), item(2, ["contract", "invoice"], 0.9), item(3, []),
             item(4, ["contract"], 0.95), item(5, ["contract"])]
    tags = tt.rollup(_task(True), items)
    assert [(t.label, t.score, t.chunk_ids) for t in tags] == [
        ("invoice", 1.0, [1, 2]), ("contract", 1.0, [5, 4, 2])]
    one = tt.rollup(_task(False, "document"), items)
    assert [t.label for t in one] == ["contract"]  # the label most chunks carry
    assert tt.rollup(_task(), [item(1, None, 0.0)]) == []


def test_train_suggests_rules_and_measures_them(tmp_path):
    examples = sample_examples(LABELS, per_label=4)
    task = _task(rules={"invoice": "invoice"})
    messages = []
    result = KeywordsTaskType().train(task, examples[:8], examples[8:], TrainOptions(
        progress=messages.append), tmp_path)
    saved = json.loads((tmp_path / "rules.json").read_text())["rules"]
    assert saved["invoice"]["match"] == "invoice"
    assert "receipt" in saved["receipt"]["match"] and "contract" in saved["contract"]["match"]
    assert any(m.startswith("suggested a rule for receipt") for m in messages)
    assert result.metrics["macro_f1"] == 1.0 and result.metrics["coverage"] == 1.0


def test_suggest_finds_distinctive_words():
    examples = [Example(f"the heart and its arteries, case {i}", "cardio") for i in range(4)]
    examples += [Example(f"a tumour in the colon, case {i}", "onco") for i in range(4)]
    task = Task(name="t", type="keywords", labels=["cardio", "onco"])
    rules = suggest_rules(task, examples)
    assert set(rules["cardio"].match.split()) == {"heart", "arteries"}  # "its": a stop word
    assert rules["onco"].algorithm == "any" and "tumour" in rules["onco"].match.split()
    assert "case" not in rules["onco"].match  # found on both sides


# -- the commands ---------------------------------------------------------------------------------
def _create(cli, *extra):
    result = cli("tasks", "create", "mail", "--type", "keywords", "--labels",
                 "invoice,receipt,contract", *extra)
    assert result.exit_code == 0, result.output


def test_keywords_commands(doctagger_cli):
    _create(doctagger_cli, "--multi-label")
    result = doctagger_cli("keywords", "set", "mail", "invoice", "--any", 'invoice "amount due"')
    assert result.exit_code == 0, result.output
    assert "model version 1 (active)" in result.output
    out = doctagger_cli.json("keywords", "set", "mail", "receipt", "--regex",
                             r"receipt\s+no\.?\s*\d+", "--json")
    assert out["model_version"] == 2 and set(out["rules"]) == {"invoice", "receipt"}
    listed = doctagger_cli.json("keywords", "list", "mail", "--json")
    assert [(r["label"], (r["rule"] or {}).get("algorithm")) for r in listed] == [
        ("invoice", "any"), ("receipt", "regex"), ("contract", None)]
    plain = doctagger_cli("keywords")  # the group lists by default
    assert plain.exit_code == 0 and 'any of: invoice, "amount due"' in plain.output
    tested = doctagger_cli.json("keywords", "test", "mail", "Receipt no. 12, amount due",
                                "--json")
    assert [r["label"] for r in tested if r["matched"]] == ["invoice", "receipt"]
    assert doctagger_cli("keywords", "remove", "mail", "receipt").exit_code == 0
    versions = doctagger_cli.json("models", "mail", "--json")
    assert [v["version"] for v in versions] == [1, 2, 3] and versions[-1]["active"]
    assert versions[-1]["method"] == "rules"


def test_keywords_load_and_errors(doctagger_cli, tmp_path):
    _create(doctagger_cli)
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"invoice": "invoice bill",
                                 "contract": {"match": "agreement", "algorithm": "exact"}}))
    out = doctagger_cli.json("keywords", "load", "mail", rules, "--json")
    assert out["rules"]["contract"]["algorithm"] == "exact"
    # copy the rules of one task to another, through `keywords list --json`
    listed = doctagger_cli("keywords", "list", "mail", "--json")
    rules.write_text(listed.stdout)
    assert doctagger_cli("tasks", "create", "copy", "--type", "keywords", "--labels",
                         "invoice,contract", "--level", "document").exit_code == 0
    copied = doctagger_cli.json("keywords", "load", "copy", rules, "--json")
    assert copied["rules"] == out["rules"]
    rules.write_text("{}")
    empty = doctagger_cli("keywords", "load", "copy", rules)
    assert empty.exit_code == 1 and "holds no rules for task 'copy'" in empty.output

    both = doctagger_cli("keywords", "set", "mail", "invoice", "--any", "x", "--all", "y")
    assert both.exit_code == 2 and "give exactly one of --any" in both.output
    unknown = doctagger_cli("keywords", "set", "mail", "memo", "--any", "x")
    assert unknown.exit_code == 1 and "'memo' is not a label of task 'mail'" in unknown.output
    regex = doctagger_cli("keywords", "set", "mail", "invoice", "--regex", "(")
    assert regex.exit_code == 1 and "bad regular expression" in regex.output
    rules.write_text("{not json")
    bad = doctagger_cli("keywords", "load", "mail", rules)
    assert bad.exit_code == 1 and "not a JSON file" in bad.output
    missing = doctagger_cli("keywords", "remove", "mail", "receipt")
    assert missing.exit_code == 1 and "has no rule" in missing.output
    assert doctagger_cli("tasks", "create", "other", "--type", "ner", "--labels",
                         "PER").exit_code in (0, 1)  # ner may not be installed
    if doctagger_cli("tasks", "show", "other").exit_code == 0:
        wrong = doctagger_cli("keywords", "list", "other")
        assert wrong.exit_code == 1 and "is a 'ner' task" in wrong.output


def _pdfs(folder, pages):
    """One PDF per entry of ``pages`` (a list of page texts), written with PyMuPDF."""
    pymupdf = pytest.importorskip("pymupdf")
    folder.mkdir()
    for n, texts in enumerate(pages):
        doc = pymupdf.open()
        for text in texts:
            page = doc.new_page()
            page.insert_textbox(pymupdf.Rect(50, 50, 550, 800), text, fontsize=11)
        doc.save(folder / f"letter-{n}.pdf")
        doc.close()
    return folder


def test_end_to_end_from_pdfs_to_search(doctagger_cli, tmp_path):
    if doctagger_cli("ingest", "--help").exit_code != 0:
        pytest.skip("this doctagger has no 'ingest' command yet")
    folder = _pdfs(tmp_path / "letters", [
        ["Invoice 2024-17. Amount due: 120 EUR, payable within 30 days."],
        ["Thank you for your visit.", "Receipt no. 981: paid in cash."],
        ["Minutes of the meeting about the garden."],
    ])
    assert doctagger_cli("ingest", folder).exit_code == 0
    _create(doctagger_cli, "--multi-label")
    doctagger_cli("keywords", "set", "mail", "invoice", "--any", 'invoice "amount due"')
    doctagger_cli("keywords", "set", "mail", "receipt", "--regex", r"receipt\s+no\.?\s*\d+")
    tagged = doctagger_cli.json("tag", "mail", "--json")
    assert tagged["model_version"] == 2 and tagged["document_tags"] == 2

    hits = doctagger_cli.json("search", "--tag", "mail=receipt", "--json")
    assert {h["path"].rsplit("/", 1)[-1] for h in hits} == {"letter-1.pdf"}
    docs = doctagger_cli.json("docs", "--tag", "mail=invoice", "--json")
    assert [d["path"].rsplit("/", 1)[-1] for d in docs] == ["letter-0.pdf"]

    # a new rule is a new version: tag re-tags with it, and nothing is tagged twice
    doctagger_cli("keywords", "set", "mail", "contract", "--fuzzy", "meeting about the gardn")
    again = doctagger_cli.json("tag", "mail", "--json")
    assert again["model_version"] == 3 and again["document_tags"] == 3
    assert doctagger_cli.json("tag", "mail", "--json")["chunks"] == 0


def test_keywords_suggest_from_labels(doctagger_cli, tmp_path):
    _create(doctagger_cli)
    none = doctagger_cli("keywords", "suggest", "mail")
    assert none.exit_code == 1 and "has no labelled examples" in none.output
    rows = ["text,label"]
    rows += [f"Invoice {i}: the amount due is {i}0 EUR,invoice" for i in range(4)]
    rows += [f"Receipt {i}: paid in cash,receipt" for i in range(4)]
    rows += [f"Service agreement {i} signed by both parties,contract" for i in range(4)]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    imported = doctagger_cli("import", "mail", tmp_path / "labels.csv")
    assert imported.exit_code == 0, imported.output
    out = doctagger_cli.json("keywords", "suggest", "mail", "--json")
    assert out["examples"] == 12 and out["model_version"] is None
    assert set(out["suggested"]["invoice"]["match"].split()) < {"invoice", "amount", "due", "eur"}
    saved = doctagger_cli("keywords", "suggest", "mail", "--save")
    assert saved.exit_code == 0 and "Saved as model version 1" in saved.output
    again = doctagger_cli("keywords", "suggest", "mail")
    assert again.exit_code == 1 and "add --all" in again.output
    assert doctagger_cli.json("keywords", "suggest", "mail", "--all", "--json")["suggested"]
