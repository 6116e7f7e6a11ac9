"""``train`` and ``eval``: thin wrappers over doctagger.train and doctagger.evaluation."""
from __future__ import annotations

import importlib.util

import click

from doctagger.cli.common import echo_json, echo_table, get_index, json_option

#: --report-to value -> the packages any one of which makes it work
REPORTERS = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",),
             "mlflow": ("mlflow",), "trackio": ("trackio",)}


def _check_reporters(ctx, param, values):
    for name in values:
        if not any(importlib.util.find_spec(pkg) for pkg in REPORTERS[name]):
            raise click.BadParameter(
                f"{name} is not installed: pip install {REPORTERS[name][0]} into the same "
                "environment as doctagger, or leave out --report-to", param_hint="--report-to")
    return list(dict.fromkeys(values))


def _say(message: str) -> None:
    click.echo(message, err=True)


def _short_model(name) -> str:
    from pathlib import PurePath

    text = str(name or "")
    return PurePath(text).name if "/" in text and text.startswith(("/", ".", "~")) else text


def _metric_line(metrics: dict) -> str:
    keys = [k for k in ("macro_f1", "f1", "micro_f1", "accuracy", "precision", "recall")
            if isinstance(metrics.get(k), (int, float))]
    line = ", ".join(f"{k} {metrics[k]:.3f}" for k in keys)
    interval = metrics.get("macro_f1_interval")
    if line and interval and len(interval) == 2:
        line += f"; macro_f1 95% interval {interval[0]:.3f}-{interval[1]:.3f}"
    if line and isinstance(metrics.get("calibration_error"), (int, float)):
        line += f"; calibration error {metrics['calibration_error']:.3f}"
    return line


@click.command()
@click.argument("task")
@click.option("--base-model", metavar="NAME_OR_DIR",
              help="Model to start from: a local folder or a Hugging Face id "
                   "[default: the bundled all-MiniLM-L6-v2].")
@click.option("--method", type=click.Choice(["auto", "finetune", "head"]), default="auto",
              show_default=True,
              help="finetune: train the whole transformer; head: a small classifier on frozen "
                   "embeddings (fast); auto: pick by held-out score.")
@click.option("--preset", type=click.Choice(["conservative", "aggressive"]),
              help="Starting hyperparameters from the fine-tuning guide: conservative "
                   "(lr 2e-5, 3 epochs, batch 16, decay 0.01) or aggressive (lr 5e-5, 5 "
                   "epochs, batch 32, decay 0.1). Options below override it.")
@click.option("--epochs", type=click.FloatRange(min=0, min_open=True),
              help="Passes over the training data (early stopping may end sooner).")
@click.option("--batch-size", type=click.IntRange(min=1),
              help="Examples per step (halved automatically, with gradient accumulation, "
                   "when memory runs out).")
@click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True),
              help="Peak learning rate (after a warm-up over the first 10% of steps).")
@click.option("--weight-decay", type=click.FloatRange(min=0), help="AdamW weight decay.")
@click.option("--max-length", type=click.IntRange(min=8),
              help="Maximum tokens per text [default: measured on the data, at most 512].")
@click.option("--seed", type=int, default=42, show_default=True,
              help="Random seed of the split and of training.")
@click.option("--eval-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.2,
              show_default=True,
              help="Share of the labelled documents held out for evaluation (0: none).")
@click.option("--time-budget", type=click.FloatRange(min=0), metavar="SECONDS",
              help="--method auto: the most seconds a fine-tuning candidate may be estimated "
                   "to take, or it is skipped [default: 120 + 0.3 per training example; the "
                   "estimate uses the measured speed of this machine].")
@click.option("--resume", is_flag=True,
              help="Continue an interrupted run from its last checkpoint, with its options "
                   "(those given again must match, except --epochs, which must stay above the "
                   "epochs already trained).")
@click.option("--allow-few-examples", is_flag=True,
              help="Train even when a label has fewer than 2 examples, or none (a smoke "
                   "test: such a model can be neither learned nor measured, and never "
                   "predicts a label it has no example of). --resume keeps it.")
@click.option("--report-to", "report_to", multiple=True, type=click.Choice(list(REPORTERS)),
              callback=_check_reporters,
              help="Also log the run to this tracker (its package must be installed). "
                   "Repeatable.")
@json_option
@click.pass_context
def train(ctx, task, base_model, method, preset, epochs, batch_size, learning_rate,
          weight_decay, max_length, seed, eval_fraction, time_budget, resume, allow_few_examples,
          report_to, json_):
    """Train a new model version of TASK on its labels, and register it.

    Checks the data first (too few examples, imbalance, duplicates, conflicting labels),
    holds out --eval-fraction of the documents, trains, and registers the version with its
    held-out metrics in models/TASK/vN/. A version with no held-out score, or one that
    learned nothing, does not replace an active version that scores better: it is
    registered, and 'doctagger models use TASK VERSION' makes it active. A new version that
    scores lower than the one it replaces says so, with the command to go back.

    \b
    Examples:
      doctagger train topic
      doctagger train topic --preset aggressive --epochs 8
      doctagger train topic --method head --json
      doctagger train topic --resume
      torchrun --nproc_per_node 2 -m doctagger train topic
    """
    from click.core import ParameterSource

    from doctagger.tasktypes import TrainOptions
    from doctagger.train import RUN_OPTIONS, train_task

    options = TrainOptions(base_model=base_model, method=method, preset=preset, epochs=epochs,
                           batch_size=batch_size, learning_rate=learning_rate,
                           weight_decay=weight_decay, max_length=max_length, seed=seed,
                           eval_fraction=eval_fraction, resume=resume,
                           report_to=list(report_to), progress=_say,
                           extra={"time_budget": time_budget} if time_budget is not None
                           else {})
    given = {key for key in RUN_OPTIONS if ctx.get_parameter_source(key) in (
        ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT, ParameterSource.PROMPT)}
    result = train_task(get_index(), task, options, explicit=given,
                        allow_few=allow_few_examples)
    from doctagger.training import is_main_process

    if not is_main_process():
        return
    if json_:
        echo_json(result)
        return
    for line in outcome_lines(result):
        click.echo(line)


def outcome_lines(result: dict) -> list[str]:
    """What ``train`` says on stdout: the version, whether it became active and why, its
    held-out scores, and the command to switch when it did not."""
    name, version = result["task"], result["version"]
    how = result.get("activation") or {"reason": "first" if result["active"] else "kept"}
    reason, previous = how["reason"], how.get("previous")
    seconds = f" in {result['seconds']:.1f} s" if result.get("seconds") is not None else ""
    trained = (f"Trained {name} v{version} ({result['method']} from "
               f"{_short_model(result['base_model']) or 'the default model'}){seconds}")
    score = result["headline"]
    before = previous and previous.get("headline")

    def shown(headline) -> str:
        return f"{headline['metric']} {headline['value']:.3f}" if headline else "no score"

    lines = []
    if result["active"]:
        was = f" (replacing v{previous['version']})" if previous else ""
        if not result["eval_examples"]:
            lines.append(f"{trained}; it is now active{was}, but its quality is UNMEASURED: "
                         f"no held-out evaluation ({how.get('unmeasured') or 'see above'}).")
            lines.append("Label more examples, from several documents, and train again to "
                         "measure it.")
        elif how.get("learned_nothing"):
            lines.append(f"{trained}; it is now active{was}, but it learned nothing (see the "
                         "warning above).")
        else:
            lines.append(f"{trained}; it is now active{was}.")
        if how.get("lower_than_previous") and score and before:
            back = how.get("go_back") or f"doctagger models use {name} {previous['version']}"
            lines.append(f"v{version} scores {score['value']:.3f} {score['metric']} against "
                         f"v{previous['version']}'s {before['value']:.3f} (on different "
                         f"held-out sets); to go back: {back}")
    else:
        old = previous["version"] if previous else "?"
        why = (f"v{version} has no held-out score ({how.get('unmeasured') or 'see above'}) and "
               f"v{old} has one ({shown(before)})" if reason == "unmeasured" else
               f"v{version} learned nothing (see the warning above) and v{old} scores better "
               f"on its own held-out set ({shown(before)} against {shown(score)})")
        lines.append(f"{trained}; v{old} stays active: {why}.")
        lines.append(f"To use v{version} anyway: doctagger models use {name} {version}")
    if result["eval_examples"]:
        lines.append(f"Held-out ({result['eval_examples']} examples): "
                     f"{_metric_line(result['metrics']) or 'no metrics reported'}")
    lines.append(f"Model: {result['path']}")
    return lines


@click.command("eval")
@click.argument("task")
@click.option("--model", "version", metavar="VERSION",
              help="Version to evaluate, e.g. 3 or v3 [default: the active one].")
@click.option("--file", "file", type=click.Path(dir_okay=False, exists=True),
              help="Evaluate on this label file (CSV, JSONL or CoNLL, as 'import' reads) "
                   "instead of the held-out examples.")
@click.option("--format", "fmt", type=click.Choice(["auto", "csv", "tsv", "jsonl", "conll"]),
              default="auto", show_default=True, help="Format of --file.")
@json_option
def eval_cmd(task, version, file, fmt, json_):
    """Metrics of a model version of TASK, on its held-out examples or on --file.

    Prints accuracy, macro/micro F1 and per-label scores (entity-level scores for NER), and
    saves them as JSON, Markdown and a confusion-matrix PNG in models/TASK/vN/eval/.

    \b
    Examples:
      doctagger eval topic
      doctagger eval topic --model v2 --file test.csv
      doctagger eval people --file gold.conll --json
    """
    from doctagger.evaluation import evaluate_version

    result = evaluate_version(get_index(), task, version, file=file, fmt=fmt)
    if result.get("seen_in_training"):
        _say(f"Warning: {result['seen_in_training']} of the {result['examples']} examples in "
             f"{file} were training examples of v{result['version']}: their scores are "
             "optimistic. Evaluate on texts the model has never seen.")
    if json_:
        echo_json(result)
        return
    metrics = result["metrics"]
    click.echo(f"{result['task']} v{result['version']} on {result['source']} "
               f"({result['examples']} examples)")
    rows = [{"metric": k, "value": f"{v:.4f}" if isinstance(v, float) else v}
            for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if rows:
        click.echo("")
        echo_table(rows, ["metric", "value"])
    interval = metrics.get("macro_f1_interval")
    if interval and len(interval) == 2:
        click.echo(f"macro_f1 95% bootstrap interval: {interval[0]:.3f}-{interval[1]:.3f}")
    per = metrics.get("per_label") or metrics.get("per_type") or {}
    if per:
        click.echo("")
        echo_table([{"label": k, **{m: (f"{r[m]:.3f}" if isinstance(r.get(m), float)
                                        else r.get(m)) for m in
                                    ("precision", "recall", "f1", "support")}}
                    for k, r in per.items()],
                   ["label", "precision", "recall", "f1", "support"], widths={"label": 30})
    if result.get("reports"):
        click.echo("")
        click.echo("Reports: " + ", ".join(result["reports"].values()))


COMMANDS = [train, eval_cmd]
