"""doctagger ingest: a thin wrapper over doctagger.ingest.ingest()."""
from __future__ import annotations

import os

import click

from doctagger.cli.common import echo_json, get_index, is_tty, json_option

@click.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH...",
                type=click.Path(exists=True, path_type=str))
@click.option("--ocr", type=click.Choice(["auto", "off", "force"]), default="auto",
              show_default=True,
              help="auto: OCR pages that have no text layer; off: never; "
                   "force: OCR every page, ignoring the text layer.")
@click.option("--ocr-engine", type=click.Choice(["auto", "rapidocr", "tesseract"]),
              default="auto", show_default=True,
              help="rapidocr: installed with doctagger (English, French, Chinese); "
                   "tesseract: the system's, for the languages it has; auto: RapidOCR "
                   "where it reads the language (measured better), else Tesseract.")
@click.option("--ocr-language", default="eng", show_default=True, metavar="LANG",
              help="Language(s) of the scanned pages as Tesseract codes, e.g. 'eng' or "
                   "'deu+eng'.")
@click.option("--ocr-dpi", type=click.IntRange(72, 600), default=300, show_default=True,
              help="Resolution pages are rendered at for OCR; 200 is about twice as fast "
                   "and usually enough for 10-point text.")
@click.option("--password", "passwords", multiple=True, metavar="PW",
              help="Password for encrypted PDFs; repeat to try several on each file.")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Extract in N processes (default: the number of CPU cores). "
                   "0 extracts in this process, without crash isolation.")
@click.option("--force", is_flag=True,
              help="Re-extract every file, even unchanged ones (labels are kept).")
@click.option("--chunk-tokens", type=click.IntRange(16, 512), default=200, show_default=True,
              help="Largest chunk, in tokens of the default model (512 is its window). "
                   "Applies to files extracted in this run; add --force to re-chunk all.")
@click.option("--max-pages", type=click.IntRange(min=1), default=5000, show_default=True,
              help="Skip (as failed) documents with more pages than this.")
@click.option("--max-seconds", type=click.FloatRange(min=1), default=600, show_default=True,
              help="Stop (as failed) a document that takes longer than this, OCR included.")
@click.option("--max-image-mb", type=click.FloatRange(min=1), default=128, show_default=True,
              help="Largest page image rendered for OCR; a larger page is OCRed at a lower "
                   "resolution, and this is reported.")
@json_option
def ingest(paths, ocr, ocr_engine, ocr_language, ocr_dpi, passwords, workers, force, chunk_tokens, max_pages,
           max_seconds, max_image_mb, json_):
    """Extract text from PDFs (and EPUB, XPS, FB2, MOBI, CBZ, SVG, TXT, Markdown) in files
    or folders, recursively; chunk it and store it in the index.

    Re-running skips unchanged files (same size and time, or same SHA-256), re-extracts
    changed ones in one transaction each and keeps their labels, and follows files that
    moved. Files that cannot be read are recorded with the reason (see 'doctagger docs
    --failed') and the run goes on.

    \b
    Examples:
      doctagger ingest ~/papers
      doctagger ingest contracts/ scans/ --password s3cret --workers 4
      doctagger ingest report.pdf --ocr force --ocr-language deu --json

    \b
    Exit codes:
      0  every file was stored, or was unchanged
      3  the run finished, but some files could not be ingested (failed,
         encrypted, needs OCR): each is listed with its reason, the rest is stored
      1  the run itself failed (index locked, ...)
      2  usage error (a PATH that does not exist, a bad option value)
    """
    from doctagger.ingest import IngestOptions
    from doctagger.ingest import ingest as run_ingest

    options = IngestOptions(ocr=ocr, ocr_engine=ocr_engine, ocr_language=ocr_language, ocr_dpi=ocr_dpi,
                            passwords=passwords, workers=workers, force=force,
                            chunk_tokens=chunk_tokens, max_pages=max_pages,
                            max_seconds=max_seconds, max_image_mb=max_image_mb)
    index = _open_index()
    bar = {}

    def on_start(n):
        if n and is_tty() and not json_:
            bar["bar"] = click.progressbar(
                length=n, label="Extracting", file=click.get_text_stream("stderr"),
                item_show_func=lambda r: os.path.basename(r.path) if r else "")
            bar["bar"].__enter__()

    def progress(result):
        if "bar" in bar:
            bar["bar"].update(1, result)

    try:
        summary = run_ingest(index, paths, options, on_start=on_start, progress=progress)
    finally:
        if "bar" in bar:
            bar["bar"].__exit__(None, None, None)
    if json_:
        echo_json(summary.to_dict())
    else:
        _print_summary(summary)
    if summary.exit_code:
        raise click.exceptions.Exit(summary.exit_code)


def _open_index():
    """The index, with sqlite-utils imported without pandas and numpy when nothing has
    imported it yet: sqlite-utils imports both when installed (0.4 s here, more than the
    rest of an unchanged re-ingest), only to map their types; ingest writes plain values.
    Anything that imports pandas or numpy later in this process gets them as usual."""
    import sys

    blocked = [] if "sqlite_utils" in sys.modules else [
        m for m in ("pandas", "numpy") if m not in sys.modules]
    for name in blocked:
        sys.modules[name] = None
    try:
        return get_index()
    finally:
        for name in blocked:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


def _print_summary(summary) -> None:
    if not summary.files:
        click.echo("No files to ingest: no PDF or other supported file was found.", err=True)
        return
    for r in summary.results:
        if r.status not in ("ok", "empty"):
            click.echo(f"{r.status:10} {r.path}: {r.error}", err=True)
        elif r.status == "empty" and r.action != "unchanged":
            click.echo(f"{'no text':10} {r.path}: {r.error}", err=True)
        for warning in r.warnings:
            click.echo(f"{'warning':10} {r.path}: {warning}", err=True)
    counts = ", ".join(f"{getattr(summary, k)} {k}" for k in
                       ("new", "changed", "reextracted", "unchanged", "moved", "duplicate")
                       if getattr(summary, k) or k in ("new", "changed", "unchanged"))
    per_second = summary.pages / summary.seconds if summary.seconds else 0.0
    rate = (f", {per_second:.{1 if per_second < 10 else 0}f} pages/s"
            if summary.seconds and summary.pages else "")
    ocred = (f" ({summary.ocr_pages} OCRed by {summary.ocr_engine})"
             if summary.ocr_pages else "")
    click.echo(f"{summary.files} file{'s' if summary.files != 1 else ''}: {counts}, "
               f"{summary.failed} failed. {summary.pages} pages{ocred}, "
               f"{summary.chunks} chunks in {summary.seconds:.1f} s{rate}.")
    if summary.labels_reattached or summary.labels_orphaned:
        click.echo(f"Labels: {summary.labels_reattached} re-attached to changed documents, "
                   f"{summary.labels_orphaned} orphaned (their text is gone).")
    if summary.failed:
        click.echo("Not ingested: " + ", ".join(
            f"{n} {s.replace('_', ' ')}" for s, n in sorted(summary.statuses.items())
            if s not in ("ok", "empty")) + " (listed above; 'doctagger docs --failed' keeps "
            "the list).", err=True)
    if summary.hint:
        click.echo(f"Hint: {summary.hint}", err=True)


COMMANDS = [ingest]
