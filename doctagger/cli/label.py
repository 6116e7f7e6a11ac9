"""``doctagger label``: interactive labelling in the terminal (doctagger.labelling).

On a terminal, classification answers are single key presses; when stdin is not a terminal
(a script, a test), every answer is one line, so a session can be scripted.
"""
from __future__ import annotations

import sys
import textwrap

import click

from doctagger.cli.common import get_index
from doctagger.errors import InvalidLabelError
from doctagger.labelling import (PREMARK_MIN_SCORE, STRATEGIES, Item, Session,
                                 apply_ner_command, label_keys, label_problem,
                                 parse_selection, premarked_spans, render_spans,
                                 resolve_label, start_session)

WIDTH = 88
ENTER = ("", "\r", "\n")


class Keys:
    """Reads answers: single keys on a terminal, whole lines otherwise (EOF reads as 'q')."""

    def __init__(self):
        self.tty = sys.stdin.isatty() and sys.stdout.isatty()

    def key(self, prompt: str) -> str:
        if not self.tty:
            return self.line(prompt)
        click.echo(prompt, nl=False)
        ch = click.getchar()
        click.echo(ch if ch.isprintable() else "")
        return "" if ch in ENTER else ch

    def line(self, prompt: str) -> str:
        if self.tty:
            try:
                return input(prompt)
            except EOFError:
                return "q"
        click.echo(prompt, nl=False)
        text = sys.stdin.readline()
        if not text:
            click.echo("q")
            return "q"
        text = text.rstrip("\r\n")
        click.echo(text)
        return text


def _wrap(text: str, fill: bool = True) -> str:
    """White space folded, paragraphs kept; wrapped unless ``fill`` is False (marked NER
    text is left to the terminal, so no marker is cut in two)."""
    paragraphs = [" ".join(p.split()) for p in text.split("\n\n")]
    return "\n\n".join(textwrap.fill(p, WIDTH) if fill else p for p in paragraphs if p)


def _header(n: int, item: Item) -> None:
    where = []
    if item.page:
        where.append(f"p{item.page}" if item.page_end in (None, item.page)
                     else f"p{item.page}-{item.page_end}")
    target = f"chunk {item.chunk_id}" if item.kind == "chunk" else f"document {item.document_id}"
    line = f"── {n} · {item.path} · " + " · ".join(where + [target]) + " "
    click.echo("\n" + line + "─" * max(0, WIDTH - len(line)))
    if item.kind == "document" and item.title:
        click.echo(click.style(f"Title: {item.title}", bold=True))
    if item.why:
        click.echo(click.style(f"why: {item.why}", dim=True))


def _prediction_line(item: Item) -> str | None:
    p = item.prediction
    if p is None or isinstance(p.value, list) and p.value and isinstance(p.value[0], dict):
        return None
    if p.value is None:  # a rule-based type's "no answer"
        return f"model: (no answer) ({float(p.score):.2f})"
    value = ", ".join(p.value) if isinstance(p.value, list) else str(p.value)
    return f"model: {value or '(none)'} ({float(p.score):.2f})"


def _save(session: Session, item: Item, value, source: str) -> bool:
    """Save an answer; a value the task type refuses is said, and the item asked again."""
    try:
        session.save(item, value, source=source)
    except InvalidLabelError as exc:
        click.echo(f"not saved: {exc}")
        return False
    return True


def _class_help(keys: dict, multi: bool, review: bool, lines_in: bool) -> str:
    lines = ["Keys:"] + [f"  {k}  {label}" for k, label in keys.items()]
    if multi:
        lines += ["  (labels toggle; Enter saves the selection)", "  0  none of these labels"]
    if review:
        lines += ["  a  or Enter  accept the model's answer"]
    lines += ["  s  skip   u  undo the last answer   q  quit   ?  this help"]
    if lines_in:
        lines += ["  (a line may also be a label's name)"]
        if multi:
            lines += ["  (a line like '1,3' or 'neuro,other' saves that selection at once)"]
    return "\n".join(lines)


def _ask_class(session: Session, item: Item, keys_in: Keys, review: bool) -> str:
    """Ask one classification item; returns 'next', 'undo' or 'quit'."""
    task = session.task
    keys = label_keys(task.labels)
    multi = task.multi_label
    predicted = item.prediction.value if (review and item.prediction) else None
    if multi:
        selected = set(predicted or [])
    click.echo(_wrap(item.text))
    line = _prediction_line(item) if review or item.prediction else None
    if line:
        click.echo(click.style(line, fg="cyan"))
    menu = "  ".join(f"{k} {label}" for k, label in keys.items())
    extra = " 0 none" if multi else ""
    extra += " a accept" if review else ""
    click.echo(f"[{menu}]{extra}  s skip  u undo  ? help  q quit")

    def save(value) -> bool:
        same = predicted is not None and (sorted(value) if multi else value) == (
            sorted(predicted) if multi else predicted)
        if not _save(session, item, value, "model-accepted" if same else "human"):
            return False
        shown = ", ".join(value) if multi else value
        click.echo(f"saved: {shown or '(none)'}" + (" (accepted)" if same else ""))
        return True

    by_line = not keys_in.tty or len(task.labels) > len(keys)  # too many labels for keys
    while True:
        state = f" {{{', '.join(sorted(selected))}}}" if multi else ""
        ask = keys_in.line if by_line else keys_in.key
        answer = ask(f"label{state}> ").strip()
        if answer == "q":
            return "quit"
        if answer == "u":
            return "undo"
        if answer == "s":
            session.skip(item)
            return "next"
        if answer == "?":
            click.echo(_class_help(keys, multi, review, by_line))
            continue
        if answer == "a" and review or answer in ENTER and (review or multi and selected):
            if save(sorted(selected) if multi else predicted):
                return "next"
            continue
        if answer in ENTER:
            click.echo("press a label's key (? for help)" if not multi else
                       "toggle labels with their keys, then Enter; 0 saves 'none of these'")
            continue
        if answer == "0" and multi:
            if save([]):
                return "next"
            continue
        if "," in answer and multi:  # a whole selection on one line, saved at once
            chosen, problem = parse_selection(answer, keys, task.labels)
            if chosen is None:
                click.echo(problem)
            elif save(chosen):
                return "next"
            continue
        if "," in answer:
            click.echo(f"one label per item: task '{task.name}' is not multi-label")
            continue
        label = keys.get(answer) or (resolve_label(answer, task.labels) if len(answer) > 1
                                     else None)
        if label is None:
            click.echo(label_problem(answer, task.labels) + " (? for help)"
                       if len(answer) > 1 else f"no key {answer!r} (? for help)")
            continue
        if not multi:
            if save(label):
                return "next"
            continue
        selected ^= {label}


def _show_spans(item: Item, spans: list[dict], scores: dict) -> None:
    marked = render_spans(item.text, spans, lambda s, n, lab: click.style(
        f"[{s}|{n}:{lab}]", fg="yellow", bold=True))
    click.echo(_wrap(marked, fill=False))
    if not spans:
        click.echo("  (no spans)")
    for n, s in enumerate(spans, 1):
        score = scores.get((s["start"], s["end"], s["label"]))
        click.echo(f"  {n:>2}  {s['label']:<10} {item.text[s['start']:s['end']]!r}"
                   + (f"  ({score:.2f})" if score is not None else ""))


def _low_scored(item: Item, low: list[dict]) -> str:
    shown = ", ".join(f"{item.text[int(s['start']):int(s['end'])]!r}={s['label']} "
                      f"({float(s['score']):.2f})" for s in low[:5])
    more = f" and {len(low) - 5} more" if len(low) > 5 else ""
    return f"  not marked, the model scored them under {PREMARK_MIN_SCORE}: {shown}{more}"


def _ask_spans(session: Session, item: Item, keys_in: Keys, review: bool) -> str:
    """Ask one NER item with the edit language; returns 'next', 'undo' or 'quit'.

    The model's spans are pre-marked, except those it scored under PREMARK_MIN_SCORE
    (listed as a hint) and none at all when it learned nothing (``session.premark``)."""
    suggestion = session.suggestion(item)
    raw = suggestion.value if suggestion else []
    spans, low = premarked_spans(raw)
    # accepting is accepting the model's answer only when all of it was pre-marked
    predicted = list(spans) if suggestion is not None and not low else None
    scores = {(int(s["start"]), int(s["end"]), s["label"]): float(s["score"])
              for s in (raw or []) if isinstance(s, dict) and "score" in s}
    _show_spans(item, spans, scores)
    if low:
        click.echo(click.style(_low_scored(item, low), dim=True))
    click.echo("a accept  + TEXT = LABEL  - N  N = LABEL  s skip  u undo  ? help  q quit"
               f"   labels: {', '.join(session.task.labels)}")
    while True:
        result = apply_ner_command(keys_in.line("ner> "), item.text, spans,
                                   session.task.labels)
        if result.action == "quit":
            return "quit"
        if result.action == "undo":
            return "undo"
        if result.action == "skip":
            session.skip(item)
            return "next"
        if result.action in ("help", "error"):
            click.echo(result.message)
            continue
        if result.action == "edit":
            spans = result.spans
            click.echo(result.message)
            _show_spans(item, spans, scores)
            continue
        same = predicted is not None and spans == predicted
        if not _save(session, item, spans, "model-accepted" if same else "human"):
            continue
        click.echo(f"saved: {len(spans)} span(s)" + (" (accepted)" if same else ""))
        return "next"


def run_session(session: Session, review: bool) -> None:
    keys_in = Keys()
    spans = getattr(session.task_type, "value_kind", "class") == "spans"
    ask = _ask_spans if spans else _ask_class
    item = session.next()
    if item is None:
        click.echo("Nothing to label: every item " + (
            "with a prediction " if review else "") + "has a label for this task.")
        return
    try:
        while item is not None:
            _header(session.answered + 1, item)
            outcome = ask(session, item, keys_in, review)
            if outcome == "quit":
                break
            if outcome == "undo":
                previous = session.undo(item)
                if previous is None:
                    click.echo("nothing to undo")
                    continue
                click.echo("undone")
                item = previous
                continue
            item = session.next()
        else:
            click.echo("\nNo more items" + (f" (--limit {session.limit})"
                                            if session.limit and session.answered >= session.limit
                                            else "") + ".")
    except KeyboardInterrupt:
        click.echo("")
    _summary(session)


def _summary(session: Session) -> None:
    accepted = f" ({session.accepted} accepted from the model)" if session.accepted else ""
    noun = "label" if session.saved == 1 else "labels"
    click.echo(f"Saved {session.saved} {noun}{accepted}, skipped {session.skipped}.")
    if session.saved and getattr(session.task_type, "needs_training", True):
        click.echo(f"Next: doctagger train {session.task.name}")
    elif session.saved:  # rule-based: labels measure the rules, nothing to train
        click.echo(f"Next: doctagger eval {session.task.name} (checks the task type's answers "
                   f"against your labels), then doctagger tag {session.task.name}")


@click.command()
@click.argument("task")
@click.option("--strategy", type=click.Choice(STRATEGIES), default="sequential",
              show_default=True,
              help="Which items come first: in document order, at random, or those the "
                   "active model is least sure of (near-duplicates asked once).")
@click.option("--review", is_flag=True,
              help="Walk the model's predictions instead (those queued by 'tag --min-score' "
                   "first): accept them as they are, or correct them.")
@click.option("--limit", type=click.IntRange(min=1), help="Stop after this many answers.")
@click.option("--model", "version", metavar="VERSION",
              help="Model version for --strategy uncertain and --review (default: active).")
@click.option("--pool", type=click.IntRange(min=1), default=2000, show_default=True,
              help="--strategy uncertain: how many unlabelled items (sampled) the model "
                   "scores to choose from.")
@click.option("--seed", type=int, help="Make --strategy random/uncertain repeatable.")
def label(task, strategy, review, limit, version, pool, seed):
    """Label items of TASK in the terminal; every answer is saved at once.

    Each item shows its document, page and why it was picked. Classification: press a
    label's key (1-9, then letters); multi-label keys toggle and Enter saves, 0 saves
    "none of these" (scripted, a line 'neuro,other' saves that selection at once).
    Everywhere: s skip, u undo the last answer, ? help, q quit.
    In review mode, a or Enter accepts the model's answer (saved as 'model-accepted').

    \b
    NER: the text is shown with spans marked [text|N:LABEL] (the model's, when there is
    one, but not those it scored under 0.5); one command per line:
      a  or Enter        accept the spans as shown and save
      + TEXT = LABEL     mark the first unmarked whole-word occurrence of TEXT (repeat
                         for the next)
      - N [N ...]        drop spans by number ('- *' drops all)
      N = LABEL          change the label of span N
      s, u, q, ?         skip, undo, quit, help

    When stdin is not a terminal every answer is one line (a key, a label name, or an NER
    command), so sessions can be scripted.

    \b
    Examples:
      doctagger label topic
      doctagger label topic --strategy uncertain --limit 50
      doctagger label people --review
      printf '1\\n2\\nq\\n' | doctagger label topic
    """
    index = get_index()
    session = start_session(index, task, strategy=strategy, review_mode=review, limit=limit,
                            pool=pool, seed=seed, version=version)
    for note in session.notes:
        click.echo(f"Note: {note}")
    if review and session.model is not None:
        click.echo(f"Reviewing predictions of {task} v{session.model['version']}.")
    elif strategy == "uncertain" and session.model is not None:
        click.echo(f"Scoring up to {pool} unlabelled items with {task} "
                   f"v{session.model['version']} ...")
    run_session(session, review)


COMMANDS = [label]

