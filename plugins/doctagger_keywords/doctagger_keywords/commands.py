"""``doctagger keywords ...``: the commands this plugin adds through ``register_commands``."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from doctagger.cli.common import echo_json, echo_table, get_index, json_option
from doctagger.errors import InvalidInputError

from doctagger_keywords import store
from doctagger_keywords.rules import ALGORITHMS, DEFAULT_THRESHOLD, Rule, parse_rules


def _after_change(task_name: str, version: int, json_: bool, rules: dict) -> None:
    if json_:
        echo_json({"task": task_name, "model_version": version,
                   "rules": {k: r.to_dict() for k, r in rules.items()}})
        return
    click.echo(f"Rules of '{task_name}' saved as model version {version} (active); run "
               f"'doctagger tag {task_name}' to tag with them.", err=True)


@click.group(name="keywords", invoke_without_command=True)
@click.pass_context
def keywords(ctx):
    """Keyword rules of 'keywords' tasks: tags with no training (the doctagger-keywords
    plugin). Without a subcommand, lists the rules of every keywords task.

    Each label gets one rule, matched as in Paperless-ngx: any of the words, all of them,
    an exact phrase, a regular expression, or a fuzzy phrase. Every change makes a new
    model version (see 'doctagger models TASK'), so 'doctagger tag' re-tags with it.

    \b
    Example:
      doctagger tasks create mail --type keywords --labels invoice,receipt --multi-label
      doctagger keywords set mail invoice --any 'invoice "amount due"'
      doctagger keywords set mail receipt --regex 'receipt\\s+no\\.?\\s*\\d+'
      doctagger keywords test mail "Receipt no. 12, amount due: 30 EUR"
      doctagger tag mail
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_rules)


@keywords.command(name="list")
@click.argument("task", required=False)
@json_option
def list_rules(task, json_):
    """List the rules of TASK, or of every keywords task.

    \b
    Example:
      doctagger keywords list mail --json
    """
    index = get_index()
    tasks = [store.keywords_task(index, task)] if task else store.keywords_tasks(index)
    rows = []
    for t in tasks:
        rules = store.get_rules(t)
        for label in t.labels:
            rule = rules.get(label)
            rows.append({"task": t.name, "label": label,
                         "rule": rule.to_dict() if rule else None,
                         "describe": rule.describe() if rule else "(no rule: never tagged)"})
    if json_:
        echo_json([{k: v for k, v in r.items() if k != "describe"} for r in rows])
    elif not rows:
        click.echo("No keywords tasks; create one with 'doctagger tasks create NAME --type "
                   "keywords --labels A,B'.", err=True)
    else:
        echo_table(rows, ["task", "label", "describe"], headers={"describe": "rule"})


@keywords.command(name="set")
@click.argument("task")
@click.argument("label")
@click.option("--any", "any_", metavar="WORDS",
              help='Match when any of the words occurs ("quoted phrases" count as one word).')
@click.option("--all", "all_", metavar="WORDS", help="Match when every one of the words occurs.")
@click.option("--exact", metavar="PHRASE", help="Match the whole phrase (white space may vary).")
@click.option("--regex", metavar="PATTERN", help="Match a Python regular expression.")
@click.option("--fuzzy", metavar="PHRASE",
              help="Match a phrase approximately (OCR slips, typos); see --threshold.")
@click.option("--case-sensitive", is_flag=True, help="Tell upper from lower case.")
@click.option("--threshold", type=click.FloatRange(0.5, 1.0), default=DEFAULT_THRESHOLD,
              show_default=True, help="Similarity a --fuzzy match needs (0.5 to 1).")
@json_option
def set_rule(task, label, any_, all_, exact, regex, fuzzy, case_sensitive, threshold, json_):
    """Set the rule of LABEL in TASK (replacing its rule, if any).

    \b
    Examples:
      doctagger keywords set mail invoice --any 'invoice bill "amount due"'
      doctagger keywords set mail contract --all "agreement signed"
      doctagger keywords set mail receipt --regex 'receipt\\s+no\\.?\\s*\\d+'
      doctagger keywords set papers cardio --fuzzy "myocardial infarction" --threshold 0.8
    """
    given = {"any": any_, "all": all_, "exact": exact, "regex": regex, "fuzzy": fuzzy}
    chosen = [(alg, text) for alg, text in given.items() if text is not None]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --any, --all, --exact, --regex, --fuzzy")
    algorithm, match = chosen[0]
    rule = Rule(match=match, algorithm=algorithm, case_sensitive=case_sensitive,
                threshold=threshold)
    index = get_index()
    t = store.keywords_task(index, task)
    version = store.set_rule(index, t, label, rule)
    _after_change(t.name, version, json_, store.get_rules(t))


@keywords.command(name="remove")
@click.argument("task")
@click.argument("label")
@json_option
def remove_rule(task, label, json_):
    """Remove the rule of LABEL in TASK (the label is then never tagged).

    \b
    Example:
      doctagger keywords remove mail receipt
    """
    index = get_index()
    t = store.keywords_task(index, task)
    version = store.remove_rule(index, t, label)
    _after_change(t.name, version, json_, store.get_rules(t))


@keywords.command(name="load")
@click.argument("task")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option
def load_rules(task, file, json_):
    """Replace the rules of TASK with those in a JSON FILE.

    The file maps labels to rules: a string is an 'any' rule; an object has "match",
    "algorithm" (one of any, all, exact, regex, fuzzy), "case_sensitive" and "threshold".
    The output of 'doctagger keywords list TASK --json' works too, so rules can be
    copied from one task to another.

    \b
    Example:
      echo '{"invoice": "invoice bill", "receipt": {"match": "receipt", "algorithm": "exact"}}' > rules.json
      doctagger keywords load mail rules.json
    """
    index = get_index()
    t = store.keywords_task(index, task)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"{file}: not a JSON file ({exc}); see "
                                "'doctagger keywords load --help' for its shape") from None
    if isinstance(data, list):  # the output of `keywords list --json`
        rows = [r for r in data if isinstance(r, dict) and "label" in r]
        if len({r.get("task") for r in rows}) > 1:  # several tasks: take this one's
            rows = [r for r in rows if r.get("task") == t.name]
        data = {r["label"]: r["rule"] for r in rows if r.get("rule")}
    rules = parse_rules(data.get("rules", data) if isinstance(data, dict) else data, t.labels)
    if not rules:
        raise InvalidInputError(f"{file} holds no rules for task '{t.name}'; see "
                                "'doctagger keywords load --help' for its shape")
    version = store.save_rules(index, t, rules)
    _after_change(t.name, version, json_, rules)


@keywords.command(name="test")
@click.argument("task")
@click.argument("text")
@json_option
def test_rules(task, text, json_):
    """Show which rules of TASK match TEXT ('-' reads it from standard input).

    \b
    Example:
      doctagger keywords test mail "Invoice 42: amount due 30 EUR"
    """
    if text == "-":
        text = sys.stdin.read()
    index = get_index()
    t = store.keywords_task(index, task)
    rules = store.get_rules(t)
    rows = []
    for label in t.labels:
        rule = rules.get(label)
        score, found = rule.find(text) if rule else (0.0, [])
        rows.append({"label": label, "matched": score > 0, "score": round(score, 4),
                     "found": found, "rule": rule.describe() if rule else "(no rule)"})
    if json_:
        echo_json(rows)
        return
    echo_table([dict(r, matched="yes" if r["matched"] else "no",
                     found=", ".join(repr(f) for f in r["found"])) for r in rows],
               ["label", "matched", "score", "found", "rule"], widths={"found": 40})


@keywords.command(name="suggest")
@click.argument("task")
@click.option("--all", "all_labels", is_flag=True,
              help="Suggest for every label, not only those without a rule.")
@click.option("--save", is_flag=True, help="Save the suggestions as the labels' rules.")
@json_option
def suggest(task, all_labels, save, json_):
    """Suggest 'any' rules from the labelled examples of TASK: for each label, the words
    found in most of its examples and in few of the others.

    \b
    Example:
      doctagger import topics labels.csv
      doctagger keywords suggest topics --save
    """
    from doctagger.labels import examples

    from doctagger_keywords.suggest import suggest_rules

    index = get_index()
    t = store.keywords_task(index, task)
    rules = store.get_rules(t)
    wanted = list(t.labels) if all_labels else [label for label in t.labels if label not in rules]
    if not wanted:
        raise InvalidInputError(f"every label of task '{t.name}' has a rule; add --all to "
                                "suggest rules for them all")
    found = examples(index, t)
    if not found:
        raise InvalidInputError(f"task '{t.name}' has no labelled examples to learn from; "
                                f"label some with 'doctagger label {t.name}' or "
                                f"'doctagger import {t.name} FILE'")
    suggested = suggest_rules(t, found, wanted)
    version = store.save_rules(index, t, {**rules, **suggested}) if save and suggested else None
    if json_:
        echo_json({"task": t.name, "examples": len(found), "model_version": version,
                   "suggested": {k: r.to_dict() for k, r in suggested.items()},
                   "none_found": [label for label in wanted if label not in suggested]})
        return
    rows = [{"label": label, "rule": suggested[label].describe() if label in suggested
             else "(no distinctive word found)"} for label in wanted]
    echo_table(rows, ["label", "rule"])
    if version is not None:
        click.echo(f"Saved as model version {version} (active); run 'doctagger tag "
                   f"{t.name}' to tag with them.", err=True)
    elif suggested:
        click.echo(f"Not saved; add --save, or set them one by one with 'doctagger keywords "
                   f"set {t.name} LABEL --any ...'.", err=True)


__all__ = ["keywords", "ALGORITHMS"]
