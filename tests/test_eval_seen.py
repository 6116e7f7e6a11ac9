"""``eval --file`` warns when the file holds texts the version was trained on (the guide's
"test on unseen data" pitfall): a score on those measures memory."""
from __future__ import annotations

import json

import pytest

from tests.test_cli_train import corpus, fake, make_task  # noqa: F401 (fixture)


def test_eval_file_with_training_texts_warns(fake, index, invoke, tmp_path):  # noqa: F811
    make_task(index, docs=corpus())
    assert invoke("train", "topic").exit_code == 0
    trained = [ex.text for ex in fake.calls[0]["train"]]
    gold = tmp_path / "gold.csv"
    gold.write_text("text,label\n" + f"{trained[0]},a\n{trained[1]},b\n" + "something new,b\n")
    result = invoke("eval", "topic", "--file", gold)
    assert result.exit_code == 0, result.output
    assert (f"Warning: 2 of the 3 examples in {gold} were training examples of v1"
            in result.stderr)
    out = json.loads(invoke("eval", "topic", "--file", gold, "--json").stdout)
    assert out["seen_in_training"] == 2


def test_eval_file_of_unseen_or_held_out_texts_does_not_warn(fake, index, invoke,  # noqa: F811
                                                             tmp_path):
    make_task(index, docs=corpus())
    assert invoke("train", "topic").exit_code == 0
    held_out = [ex.text for ex in fake.calls[0]["eval"]]
    gold = tmp_path / "gold.csv"
    gold.write_text("text,label\nsomething new,b\n" + "".join(f"{t},a\n" for t in held_out))
    result = invoke("eval", "topic", "--file", gold)
    assert result.exit_code == 0, result.output
    assert "Warning" not in result.stderr
    out = json.loads(invoke("eval", "topic", "--file", gold, "--json").stdout)
    assert out["seen_in_training"] == 0
    # the held-out evaluation has no such key: its texts are the held-out ones by design
    assert "seen_in_training" not in json.loads(invoke("eval", "topic", "--json").stdout)


def test_eval_file_names_the_line_of_a_refused_conll_tag(index, tmp_path):
    """As import does: the line of the token whose entity type the task refuses, not the
    sentence's first line."""
    from doctagger.errors import ImportFormatError
    from doctagger.evaluation import file_examples
    from doctagger.tasktypes import Task
    from tests.fakes import FakeNER

    task = Task(name="ents", type="fakener", labels=["PER"])
    f = tmp_path / "gold.conll"
    f.write_text("Bob\tB-PER\nmet\tO\nthe\tO\ncat\tB-animal\n.\tO\n")
    with pytest.raises(ImportFormatError) as info:
        file_examples(index, task, FakeNER(), f)
    assert info.value.line == 4 and "animal" in str(info.value)
