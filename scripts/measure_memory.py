"""Peak memory of an export as the corpus grows: it should stay flat.

Replicates the real Fraktur lines of ../shared/data/ocrd-line-gt or --lines DIR (hard links
under new ids, so the corpus costs no disk) to each N, exports it in a fresh process per run
(keeping the replicas, which de-duplication would otherwise fold) and prints wall time and peak RSS
(of the export or of its worker processes, whichever is larger), measured as in bench.py.

    .venv/bin/python scripts/measure_memory.py --sizes 10000 100000 --format trocr
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench import EXPORT_JOB, LINE_GT, replicate_corpus, run_job


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 10000, 20000])
    parser.add_argument("--format", default="trocr")
    parser.add_argument("--no-copy-images", dest="copy_images", action="store_false")
    parser.add_argument(
        "--lines",
        metavar="DIR",
        type=Path,
        default=LINE_GT,
        help=f"folder of real lines to replicate (default: {LINE_GT})",
    )
    args = parser.parse_args()
    if not any(args.lines.glob("*.tif")):
        parser.error(f"no line images in {args.lines}: pass --lines DIR (tests/data/ocrd-line-gt has 114 real lines)")
    print(f"{'N':>8}  {'seconds':>8}  {'samples/s':>10}  {'peak RSS MB':>12}")
    for count in args.sizes:
        with tempfile.TemporaryDirectory(dir=Path.cwd()) as scratch:
            manifest = replicate_corpus(Path(scratch), count, args.lines)
            output = Path(scratch) / "out"
            # "0": the export's own default of one process per core.
            figures = run_job(
                EXPORT_JOB,
                str(manifest),
                str(output),
                args.format,
                "1" if args.copy_images else "0",
                "0",
                env={"HF_HOME": str(Path(scratch) / "hf")},
            )
            print(
                f"{count:>8}  {figures['seconds']:>8.2f}  {count / figures['seconds']:>10.0f}  "
                f"{figures['peak_rss_mb']:>12.0f}"
            )


if __name__ == "__main__":
    main()
