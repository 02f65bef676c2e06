"""The ``ocr-datasets`` command: parses arguments and calls the API, one call per command."""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import signal
import sys
import threading
import unicodedata
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .adapters import ALL_FORMATS, FORMAT_NAMES
from .errors import InterruptedAfterPublishing, OcrDatasetsError
from .notices import Notice
from .options import ExportOptions, ViewOptions, add_flags
from .sources import SOURCE_KINDS, CropOptions, read_samples

if TYPE_CHECKING:
    from .manifest import ExportResult

# The API (and with it datasets and pyarrow, half a second) is imported by the commands that
# call it, so that --help, --version and a mistyped argument answer at once.

_DESCRIPTION = """\
Turn labeled OCR samples into Hugging Face datasets for TrOCR, Llama 3.2 Vision or any tool
(generic JSONL), on this machine only. Each export is a batch folder that
datasets.load_dataset(folder) reads offline.

Start with `ocr-datasets example demo-input` to see an input manifest, and
`ocr-datasets export --help` for its fields (id, image_path, ground_truth, ocr_text,
ocr_confidence, metadata).
"""

_EXPORT_EPILOG = """\
Inputs (--from, guessed when left out):
  jsonl, csv     a JSONL or CSV manifest, one record per sample with the fields
                 id, image_path (relative to the manifest's folder, or absolute), ground_truth,
                 and optionally ocr_text, ocr_confidence (0..1), metadata (a JSON object)
  page           PAGE XML files (or folders of them): one sample per TextLine, cut from the page
  alto           ALTO files (pixel units): one sample per TextLine, cut from the page
  gt-folder      line folders of name.png|tif|jpg + name.gt.txt (tesstrain, kraken, Calamari)
  label-studio   a Label Studio JSON export of the OCR template (with --images for uploads)

Example:
  ocr-datasets example demo-input
  ocr-datasets export --input demo-input/samples.jsonl --format all --batch-id demo
"""

_EVAL_EPILOG = """\
Definitions (the batch card's): texts NFC, spaces collapsed as the export does, the predictions
normalised like the references; rates over the whole split, total edits / total reference length.
  CER            edits in code points: u + U+0364 (u with a small e above) counts as 2 characters
  grapheme CER   edits in extended grapheme clusters, what a reader sees as one character: 1
  WER            edits in whitespace-separated words
The OCR baseline is the OCR text the batch was exported with, over the lines that had one.

Example:
  ocr-datasets eval ocr-exports/trocr/b1 --predictions runs/b1/predictions-validation.jsonl --split validation
"""


INTERRUPTED_EXIT_CODE = 130


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        with _interrupts_for_this_process_only(), warnings.catch_warnings():
            warnings.showwarning = _print_warning
            code = args.run(args)
        # Flushed here rather than at exit, so that a reader who stopped early is noticed where
        # it can be handled.
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # `ocr-datasets ... | head -1`: the reader has what it wanted, and the work is done.
        # Whatever output is left goes nowhere, so the interpreter's last flush has no pipe to fail on.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt as interrupt:
        _exit_with_the_code_returned()
        if isinstance(interrupt, InterruptedAfterPublishing):
            print(f"ocr-datasets: interrupted after publishing {interrupt}", file=sys.stderr)
        elif args.run is _run_export:
            # An export interrupted before it published has removed what it had written.
            print("ocr-datasets: interrupted: nothing was published", file=sys.stderr)
        else:
            print("ocr-datasets: interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT_CODE
    except (OcrDatasetsError, OSError) as error:
        # What the user can fix, and what the machine refused (a full disk, a permission); any
        # other exception is a bug, and its traceback is what a report of it needs.
        print(f"ocr-datasets: error: {in_cli_terms(str(error))}", file=sys.stderr)
        return 2


def run(argv: Sequence[str] | None = None) -> int:
    """The ``ocr-datasets`` command (the console script's entry, and ``python -m``; a program
    calling the command in-process calls ``main``): ``main``, after which a Ctrl-C ends the
    process at once, quietly, with the code ``main`` returned. By then the work is done and its
    outcome printed; a Ctrl-C while Python's exit handlers run (filelock's releases its locks
    there, multiprocessing's joins its workers) printed a traceback under it, and one into an
    exit that hangs must still end it."""
    code = main(argv)
    signal.signal(signal.SIGINT, lambda signal_number, frame: os._exit(code))
    return code


def _exit_with_the_code_returned() -> None:
    """Make a handled Ctrl-C end the process with the code ``main`` returns.

    CPython (3.8 to 3.13 at least) remembers an interrupt that left code run by ``exec`` (as the
    dataclasses and named tuples of a module imported mid-export are made) even once it is
    handled and, run with ``python -m``, kills itself with SIGINT at exit instead of returning
    the exit code. Running code with ``exec`` again clears that memory.
    """
    exec("")


def _python_names() -> frozenset[str]:
    """The keyword arguments of the calls the commands make, whose flags the messages give too."""
    from . import api, evaluation

    calls = (api.export, api.export_all, api.build_dataset, read_samples, CropOptions, evaluation.evaluate_predictions)
    return frozenset(name for call in calls for name in inspect.signature(call).parameters)


# The library names an option as its keyword with the flag beside it, "skip_invalid=True
# (--skip-invalid)" or "image_dir (--images DIR)"; on the command line only the flag means anything.
_OPTION_WITH_FLAG = re.compile(
    r"\b(?P<name>[a-z_]+)(?:=(?:'[^']*'|[^\s()]+))? \((?P<flag>--[a-z][a-z-]*(?: [^()]*)?)\)"
)


def in_cli_terms(message: str) -> str:
    """``message`` with each option named by its flag alone."""
    names = _python_names()
    return _OPTION_WITH_FLAG.sub(lambda match: match["flag"] if match["name"] in names else match[0], message)


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    # One line in the command's voice, not Python's "file:line: Category: ..." with the source line.
    kind = "note" if issubclass(category, Notice) else "warning"
    print(f"ocr-datasets: {kind}: {in_cli_terms(str(message))}", file=sys.stderr)


@contextmanager
def _interrupts_for_this_process_only() -> Iterator[None]:
    """Ctrl-C reaches every process of the terminal's process group, the worker processes that
    validation and ``datasets`` fork included, and each would print its own traceback (and,
    as their pools are shut down around them, more errors). Only this process turns it into
    ``KeyboardInterrupt``, reports it and stops its workers on the way out; a forked worker
    carries on until stopped, with its error output muted."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    this_process = os.getpid()

    def interrupt(signal_number, frame):
        if os.getpid() == this_process:
            raise KeyboardInterrupt
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stderr.fileno())

    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ocr-datasets", description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"ocr-datasets {__version__}")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    export = commands.add_parser(
        "export",
        help="export labeled samples as a batch of one format or all",
        description="Export labeled samples as a batch folder per format.",
        epilog=_EXPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument(
        "--input",
        required=True,
        action="append",
        metavar="PATH",
        help="a manifest, XML file, Label Studio export or folder; - for a manifest on standard input; "
        "repeat for several",
    )
    export.add_argument(
        "--from",
        dest="source",
        choices=SOURCE_KINDS,
        help="what the inputs are (default: guessed from each input's suffix, XML root or folder content)",
    )
    export.add_argument(
        "--images", metavar="DIR", help="folder to look for page images in when a file's own reference does not resolve"
    )
    export.add_argument(
        "--crop-padding",
        type=int,
        default=0,
        metavar="PX",
        help="pixels added around each line's box when cutting lines from pages",
    )
    export.add_argument(
        "--mask-outside",
        action="store_true",
        help="paint what lies outside a line's polygon white when cutting lines from pages",
    )
    export.add_argument(
        "--scale-to-image",
        action="store_true",
        help="when a page image's size differs from the one its PAGE/ALTO file declares but the aspect ratio matches "
        "(a scaled copy), scale the line coordinates to it (default: reject such pages)",
    )
    export.add_argument(
        "--format",
        required=True,
        type=_format_name,
        choices=[*FORMAT_NAMES, ALL_FORMATS],
        help="export format, or 'all' for every format",
    )
    _add_output_argument(export)
    export.add_argument(
        "--batch-id", metavar="ID", help="name of the batch folder (default: UTC time plus a random suffix)"
    )
    views = export.add_argument_group("rows and views")
    add_flags(views, ViewOptions)
    checks = export.add_argument_group("validation, splits and writing")
    add_flags(checks, ExportOptions, only=lambda option: option.name not in {view.name for view in fields(ViewOptions)})
    export.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bars (they are shown only when the error output is a terminal)",
    )
    export.set_defaults(run=_run_export)

    listing = commands.add_parser(
        "list", help="list finished batches, newest first", description="List finished batches, newest first."
    )
    listing.add_argument(
        "--format", type=_format_name, choices=[*FORMAT_NAMES, ALL_FORMATS], help="only batches of this format"
    )
    _add_output_argument(listing)
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(run=_run_list)

    verify = commands.add_parser(
        "verify",
        help="check a batch against its manifest: checksums, counts, parquet, card",
        description="Recompute every checksum and count of a batch and read its parquet files; "
        "exit 1 naming what differs.",
    )
    verify.add_argument("batch", help="the batch folder, e.g. ocr-exports/trocr/b1")
    verify.set_defaults(run=_run_verify)

    inspect = commands.add_parser(
        "inspect",
        help="print a batch's figures: counts, alphabet, text lengths, image sizes, OCR baseline",
        description="Print the figures of a batch's card: "
        "per split the counts, alphabet, text lengths, image sizes and OCR CER/WER.",
    )
    inspect.add_argument("batch", help="the batch folder, e.g. ocr-exports/trocr/b1")
    inspect.add_argument("--json", action="store_true", help="print JSON")
    inspect.set_defaults(run=_run_inspect)

    evaluate = commands.add_parser(
        "eval",
        help="score a model's transcriptions of a split against the batch, beside its OCR baseline",
        description="Score a model's transcriptions of one split of a batch: CER, grapheme CER and WER over\n"
        "the split, beside the OCR baseline the batch recorded, and the 20 worst lines.",
        epilog=_EVAL_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    evaluate.add_argument("batch", help="the batch folder, e.g. ocr-exports/trocr/b1 (any format)")
    evaluate.add_argument(
        "--predictions",
        required=True,
        metavar="FILE",
        help='JSONL, one {"id": ..., "text": ...} per line of the split: what the model read '
        "(scripts/finetune_*.py write it for the validation split)",
    )
    evaluate.add_argument(
        "--split", metavar="NAME", help="the split the predictions are for (default: test, else validation)"
    )
    evaluate.add_argument("--json", metavar="FILE", help="also write the figures and the worst lines to FILE as JSON")
    evaluate.set_defaults(run=_run_eval)

    example = commands.add_parser(
        "example",
        help="write the built-in example input (synthetic German lines) to a folder",
        description="Write synthetic German text lines (umlauts, ß, ſ) as FOLDER/samples.jsonl and FOLDER/images/.",
    )
    example.add_argument("folder", help="folder to write the example into")
    example.add_argument("--count", type=int, default=24, help="number of lines (default: 24)")
    example.set_defaults(run=_run_example)
    return parser


def reference() -> str:
    """Every command's ``--help``, as the Markdown of docs/cli-reference.md (written by
    scripts/reference_docs.py; a test checks that the file is what this returns)."""
    # argparse wraps help to the terminal's width: a fixed width makes the reference the same everywhere.
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"
    try:
        parser = _parser()
        commands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
        pages = [
            ("ocr-datasets", parser),
            *((f"ocr-datasets {name}", command) for name, command in commands.choices.items()),
        ]
        parts = ["# CLI reference\n\nGenerated from `--help` by `scripts/reference_docs.py`; do not edit by hand.\n"]
        parts += [f"## `{title}`\n\n```text\n{page.format_help().rstrip()}\n```\n" for title, page in pages]
        return "\n".join(parts)
    finally:
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns


def _format_name(value: str) -> str:
    # The folder name llama-vision is accepted for the format llama_vision.
    return value.replace("-", "_")


def _add_output_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output",
        metavar="DIR",
        help="export root holding trocr/, llama-vision/, generic/ (default: $OCR_EXPORT_PATH, else ./ocr-exports)",
    )


def _run_export(args: argparse.Namespace) -> int:
    from . import api

    samples = read_samples(
        args.input,
        args.source,
        image_dir=args.images,
        crop=CropOptions(padding=args.crop_padding, mask_outside=args.mask_outside, scale_to_image=args.scale_to_image),
        errors="report",
    )
    options = {option.name: getattr(args, option.name) for option in fields(ExportOptions)}
    # In a log, a bar's redraws become lines of their own: bars are for terminals.
    progress = not args.quiet and sys.stderr.isatty()
    if args.format == ALL_FORMATS:
        results = api.export_all(samples, args.batch_id, args.output, progress=progress, **options)
    else:
        results = [api.export(samples, args.format, args.batch_id, args.output, progress=progress, **options)]
    try:
        _print_summary(results)
        # Here, not at exit: with the output a file or a pipe, this is where the summary is written.
        sys.stdout.flush()
    except KeyboardInterrupt:
        raise InterruptedAfterPublishing(results) from None
    return 0


def _print_summary(results: list[ExportResult]) -> None:
    for result in results:
        splits = ", ".join(f"{split} {count}" for split, count in result.read_manifest()["splits"].items())
        print(f"{result.export_format}: {result.sample_count} samples in {result.export_path} ({splits})")
    # The same samples were left out of every format: said once, of the first batch.
    manifest, batch = results[0].read_manifest(), Path(results[0].export_path).resolve()
    if manifest["counts"]["rejected"]:
        reasons = ", ".join(f"{count} × {reason}" for reason, count in list(manifest["rejection_reasons"].items())[:3])
        print(f"{manifest['counts']['rejected']} left out: see {batch / 'rejected.jsonl'} (most often: {reasons})")
    if manifest["counts"]["duplicates"]:
        print(f"{manifest['counts']['duplicates']} duplicates exported once: see {batch / 'duplicates.jsonl'}")
    for result in results:
        # load_batch is load_dataset offline, with its cache inside the export folder.
        print(f'from ocr_datasets import load_batch; dataset = load_batch("{Path(result.export_path).resolve()}")')


def _run_list(args: argparse.Namespace) -> int:
    from . import api

    results = api.list_exports(args.format, output_dir=args.output)
    if args.json:
        print(json.dumps([_listing_row(result) for result in results], ensure_ascii=False, indent=2))
        return 0
    if not results:
        print(f"no batches under {api.resolve_output_dir(args.output)}")
        return 0
    print(f"{'created':<32}  {'format':<12}  {'batch':<28}  {'samples':>8}  path")
    for result in results:
        print(
            f"{result.created_at:<32}  {result.export_format:<12}  {result.batch_id:<28}  {result.sample_count:>8}  "
            f"{result.export_path}"
        )
    return 0


def _listing_row(result: ExportResult) -> dict:
    manifest = result.read_manifest()
    return {**result.to_dict(), "counts": manifest.get("counts"), "splits": manifest.get("splits")}


def _run_verify(args: argparse.Namespace) -> int:
    from .verify import verify_batch

    problems = verify_batch(args.batch)
    for problem in problems:
        print(f"{args.batch}: {problem}", file=sys.stderr)
    if not problems:
        print(f"{args.batch}: OK (every checksum, count, parquet file and the card agree with the manifest)")
    return 1 if problems else 0


def _run_inspect(args: argparse.Namespace) -> int:
    from .verify import inspect_batch

    figures = inspect_batch(args.batch)
    if args.json:
        print(json.dumps(figures, ensure_ascii=False, indent=2))
        return 0
    counts = figures["counts"]
    print(f"{figures['format']} batch {figures['batch_id']} ({figures['created_at']})")
    print(
        f"input {counts['input']}, exported {counts['exported']}, "
        f"rejected {counts['rejected']}, duplicates {counts['duplicates']}"
    )
    for split, stats in figures["statistics"].items():
        print(f"\n[{split}] {stats['samples']} samples")
        if not stats["samples"]:
            continue
        for name in ("text_length", "image_width", "image_height"):
            print(
                f"  {name:<13} min {stats[name]['min']}  median {stats[name]['median']}  mean {stats[name]['mean']}  "
                f"max {stats[name]['max']}"
            )
        baseline = stats["ocr_baseline"]
        if baseline:
            print(
                f"  OCR baseline  CER {baseline['cer']:.2%}{_grapheme_cer(baseline)}  WER {baseline['wer']:.2%}  "
                f"over {baseline['lines']} lines"
            )
        alphabet = "".join(
            "␣" if char == " " else f"◌{char}" if unicodedata.combining(char) else char for char in stats["alphabet"]
        )
        print(f"  alphabet ({len(stats['alphabet'])}, most frequent first): {alphabet}")
    return 0


def _grapheme_cer(baseline: dict) -> str:
    # Batches exported before the grapheme CER have none.
    return f"  grapheme CER {baseline['grapheme_cer']:.2%}" if baseline.get("grapheme_cer") is not None else ""


def _run_eval(args: argparse.Namespace) -> int:
    from .evaluation import evaluate_predictions

    figures = evaluate_predictions(args.batch, args.predictions, args.split)
    if args.json:
        # Before the report: a reader that stops early (| head) must not cost the file.
        Path(args.json).write_text(json.dumps(figures, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"{figures['format']} batch {figures['batch_id']}, split {figures['split']}: {args.predictions}")
    print(f"  {'':<12}  {'CER':>8}  {'grapheme CER':>12}  {'WER':>8}  {'lines':>7}")
    for name, rates in (("predictions", figures["model"]), ("OCR baseline", figures["ocr_baseline"])):
        if rates is None:
            print(f"  {name:<12}  none: no sample of this split had an ocr_text")
            continue
        print(
            f"  {name:<12}  {_percent(rates.get('cer')):>8}  {_percent(rates.get('grapheme_cer')):>12}  "
            f"{_percent(rates.get('wer')):>8}  {rates['lines']:>7}"
        )
    print("CER counts code points (u + U+0364 is 2 characters), grapheme CER what a reader sees as one (1).")
    worst = figures["worst_lines"]
    if worst:
        print(f"\nthe {len(worst)} worst lines, highest CER first:")
    for line in worst:
        print(f"  {_percent(line['cer']):>8}  {line['id']}")
        print(f"    reference:  {line['reference']}\n    prediction: {line['prediction']}")
    if args.json:
        print(f"\nfigures written to {args.json}")
    return 0


def _percent(rate: float | None) -> str:
    # No rate: the baseline of an older batch has no grapheme CER, and edits against empty references have none.
    return "–" if rate is None else f"{rate:.2%}"


def _run_example(args: argparse.Namespace) -> int:
    from .example import write_example_manifest

    manifest = write_example_manifest(args.folder, count=args.count)
    print(f"wrote {args.count} example samples: {manifest}")
    return 0


if __name__ == "__main__":
    sys.exit(run())
