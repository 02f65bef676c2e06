"""Export speed and memory against the physical floor (cp -r) and the original service.

First times the command's start-up (`ocr-datasets --help` and `--version`, which must not wait
for datasets to import). Then builds a corpus of N line images (the real Fraktur lines of
../shared/data/ocrd-line-gt, or of --lines DIR, hard-linked under new ids, or --synthetic
generated ones), and measures (our exports with
keep_duplicates, since the replicas are identical and would otherwise be exported once), each in a fresh
process and as the median of --runs rounds (a round runs every job once):

- cp -r of the images: the floor;
- the original service: copy every image and write a JSONL line per sample (reimplemented here);
- our export per format, parquet only (--no-copy-images), and --format all;
- validation alone (decoding every source image), serially and on every core: the part of an
  export that no copy has to do;
- kraken's `ketos compile -f path` on the same lines, with --ketos PATH (kraken is not a
  dependency: install it in a venv of its own);
- load_dataset(batch) plus decoding every image, against Pillow alone decoding the same bytes.

    .venv/bin/python scripts/bench.py --count 10000
    .venv/bin/python scripts/bench.py --count 50000 --runs 1 --json bench-50k.json
    .venv/bin/python scripts/bench.py --count 10000 --ketos /path/to/kraken-venv/bin/ketos
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

LINE_GT = Path(__file__).resolve().parents[2] / "shared" / "data" / "ocrd-line-gt"

# Each measured job runs in a fresh interpreter and prints {"seconds": ..., "peak_rss_mb": ...}.
_MEASURE = """
import json, resource, sys, time
start = time.perf_counter()
{body}
seconds = time.perf_counter() - start
peak_kb = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
print(json.dumps({{"seconds": seconds, "peak_rss_mb": peak_kb / 1024}}))
"""

_ORIGINAL_SERVICE = """
import json, shutil
from pathlib import Path
manifest, out = Path(sys.argv[1]), Path(sys.argv[2])
(out / "images").mkdir(parents=True)
files = []
with open(out / "train.jsonl", "w", encoding="utf-8") as view:
    for line in manifest.open(encoding="utf-8"):
        record = json.loads(line)
        source = manifest.parent / record["image_path"]
        target = out / "images" / f"{record['id']}{source.suffix}"
        shutil.copy2(source, target)
        files.append(str(target.relative_to(out)))
        row = {"file_name": str(target.relative_to(out)), "text": record["ground_truth"]}
        view.write(json.dumps(row, ensure_ascii=False) + "\\n")
(out / "manifest.json").write_text(json.dumps({"format": "trocr", "sample_count": len(files), "files": files}))
"""

EXPORT_JOB = """
from ocr_datasets import export, read_manifest
export_format, copy_images, num_proc = sys.argv[3], sys.argv[4] == "1", int(sys.argv[5]) or None
export(
    read_manifest(sys.argv[1]),
    export_format,
    batch_id="bench",
    output_dir=sys.argv[2],
    copy_images=copy_images,
    num_proc=num_proc,
    keep_duplicates=True,
    progress=False,
)
"""

_VALIDATE = """
from ocr_datasets import read_manifest
from ocr_datasets.validation import validate
validate(read_manifest(sys.argv[1]), keep_duplicates=True, num_proc=int(sys.argv[2]) or None)
"""

_LOAD_AND_DECODE = """
from ocr_datasets import load_batch
start = time.perf_counter()  # both decode jobs are timed from after their imports
rows = load_batch(sys.argv[2] + "/trocr/bench", cache_dir=sys.argv[2] + "/load-cache")["train"]
for batch in rows.iter(batch_size=1000):
    for image in batch["image"]:
        image.load()
"""

_PILLOW_DECODE = """
import io
import pyarrow.parquet as pq
from PIL import Image
from pathlib import Path
blobs = [
    cell["bytes"]
    for path in sorted(Path(sys.argv[2], "trocr", "bench", "data").glob("*.parquet"))
    for cell in pq.read_table(path, columns=["image"]).column("image").to_pylist()
]
start = time.perf_counter()
for blob in blobs:
    Image.open(io.BytesIO(blob)).load()
"""


def replicate_corpus(folder: Path, count: int, lines: Path) -> Path:
    """``count`` real lines in ``folder``: the lines of ``lines`` hard-linked under new ids
    (no disk cost), and the manifest ``samples.jsonl`` naming them."""
    sources = sorted(lines.glob("*.tif"))
    texts = {source: source.with_suffix(".gt.txt").read_text(encoding="utf-8").strip() for source in sources}
    manifest = folder / "samples.jsonl"
    with manifest.open("w", encoding="utf-8") as lines:
        for number in range(count):
            source = sources[number % len(sources)]
            name = f"{number:07d}_{source.name}"
            os.link(source, folder / name)
            # kraken's `ketos compile -f path` reads each line's text from <image stem>.gt.txt.
            os.link(source.with_suffix(".gt.txt"), folder / f"{name[:-4]}.gt.txt")
            lines.write(
                json.dumps({"id": name[:-4], "image_path": name, "ground_truth": texts[source]}, ensure_ascii=False)
                + "\n"
            )
    return manifest


def make_corpus(folder: Path, count: int, synthetic: bool, lines: Path) -> Path:
    if synthetic:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from ocr_datasets.example import write_example_manifest

        return write_example_manifest(folder, count=count)
    return replicate_corpus(folder, count, lines)


def command_seconds(command: list[str], runs: int) -> float:
    """Median wall time of ``command`` over ``runs`` runs (at least five: it is quick)."""
    times = []
    for _ in range(max(runs, 5)):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_job(body: str, *args: str, env: dict[str, str] | None = None) -> dict:
    """Run ``body`` in a fresh interpreter with ``args``; its wall seconds and peak RSS (its own
    or its child processes', whichever is larger)."""
    code = _MEASURE.format(body=textwrap.dedent(body))
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    completed = subprocess.run(
        [sys.executable, "-c", code, *args], check=False, capture_output=True, text=True, env=environment
    )
    if completed.returncode:
        raise RuntimeError(completed.stderr)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def measure(jobs: list[tuple[str, object]], runs: int) -> list[dict]:
    """Median wall time and largest peak RSS of each ``job(scratch)`` over ``runs`` rounds.

    Rounds run every job once, in turn, so that no job gets all its runs under one disk state.
    Nothing is deleted until every round is done: after a folder of thousands of files is
    deleted, ext4 creates files ten times slower for a while (perf: ``ext4_create`` spends its
    time in ``recently_deleted``, skipping the inodes just freed), so whichever job came after
    a deletion paid for it: 10,000 creates took 0.4 s, or 5 s after a deletion."""
    results: dict[str, list[dict]] = {name: [] for name, _ in jobs}
    with contextlib.ExitStack() as scratch_folders:
        for _ in range(runs):
            for name, job in jobs:
                scratch = scratch_folders.enter_context(tempfile.TemporaryDirectory(dir=Path.cwd()))
                results[name].append(job(Path(scratch)))
    return [
        {
            "name": name,
            "seconds": statistics.median(r["seconds"] for r in runs_of_job),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs_of_job),
        }
        for name, runs_of_job in results.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=10000, help="line images in the corpus (default: 10000)")
    parser.add_argument(
        "--synthetic", action="store_true", help="generated German lines instead of the real Fraktur lines"
    )
    parser.add_argument(
        "--lines",
        metavar="DIR",
        type=Path,
        default=LINE_GT,
        help=f"folder of real lines (name.tif + name.gt.txt) to replicate (default: {LINE_GT})",
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement; the median is reported (default: 3)")
    parser.add_argument(
        "--num-proc",
        type=int,
        default=0,
        help="--num-proc for our exports (default: 0, the export's own default of one process per core)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument(
        "--ketos", metavar="PATH", help="kraken's ketos executable, to time `ketos compile -f path` on the same lines"
    )
    args = parser.parse_args()
    if args.ketos and args.synthetic:
        parser.error("--ketos needs the real lines (ketos reads each line's text from a .gt.txt beside its image)")
    if not args.synthetic and not any(args.lines.glob("*.tif")):
        parser.error(
            f"no line images in {args.lines}: "
            "pass --lines DIR (tests/data/ocrd-line-gt has 114 real lines) or --synthetic"
        )

    console_script = str(Path(sys.executable).with_name("ocr-datasets"))
    for flag in ("--help", "--version"):
        print(f"ocr-datasets {flag}: {command_seconds([console_script, flag], args.runs):.2f} s (target: under 0.3 s)")

    with tempfile.TemporaryDirectory(dir=Path.cwd(), prefix="bench-corpus-") as corpus_dir:
        corpus = Path(corpus_dir)
        manifest = make_corpus(corpus, args.count, args.synthetic, args.lines)
        images = [manifest.parent / json.loads(line)["image_path"] for line in manifest.open(encoding="utf-8")]
        corpus_bytes = sum(path.stat().st_size for path in images)
        proc = str(args.num_proc)

        def export_job(export_format: str, copy_images: bool):
            return lambda scratch: run_job(
                EXPORT_JOB, str(manifest), str(scratch / "out"), export_format, "1" if copy_images else "0", proc
            )

        def copy_floor(scratch: Path) -> dict:
            images = scratch / "images"
            command = f"import subprocess; subprocess.run(['cp', '-r', {str(corpus)!r}, {str(images)!r}], check=True)"
            return run_job(command)

        def ketos_compile(scratch: Path) -> dict:
            file_list = scratch / "lines.txt"
            file_list.write_text("".join(f"{image}\n" for image in images))
            command = [args.ketos, "compile", "-f", "path", "-o", str(scratch / "dataset.arrow"), "-F", str(file_list)]
            return run_job(f"import subprocess; subprocess.run({command!r}, check=True, capture_output=True)")

        def load_and_decode(scratch: Path, body: str) -> dict:
            run_job(EXPORT_JOB, str(manifest), str(scratch), "trocr", "0", proc)
            return run_job(body, str(manifest), str(scratch))

        jobs = [
            ("cp -r (floor)", copy_floor),
            (
                "original service (copy + JSONL)",
                lambda scratch: run_job(_ORIGINAL_SERVICE, str(manifest), str(scratch / "out")),
            ),
            ("trocr (validation, parquet, views, images, checksums)", export_job("trocr", True)),
            ("trocr parquet only (--no-copy-images)", export_job("trocr", False)),
            ("llama_vision", export_job("llama_vision", True)),
            ("generic", export_job("generic", True)),
            ("--format all", export_job("all", True)),
            (
                "validation alone, 1 process (decodes every image)",
                lambda scratch: run_job(_VALIDATE, str(manifest), "1"),
            ),
            ("validation alone, every core", lambda scratch: run_job(_VALIDATE, str(manifest), "0")),
            *([("ketos compile -f path (kraken)", ketos_compile)] if args.ketos else []),
            ("load_batch + decode every image", lambda scratch: load_and_decode(scratch, _LOAD_AND_DECODE)),
            ("Pillow alone decoding the same bytes", lambda scratch: load_and_decode(scratch, _PILLOW_DECODE)),
        ]
        rows = measure(jobs, args.runs)

    floor, baseline = rows[0]["seconds"], rows[1]["seconds"]
    print(
        f"N = {args.count} {'synthetic' if args.synthetic else 'real'} lines, {corpus_bytes / 1e6:.0f} MB, median of "
        f"{args.runs} run(s)"
    )
    print(f"{'':56} {'seconds':>8} {'samples/s':>10} {'MB/s':>7} {'peak MB':>8} {'x cp -r':>8} {'x orig.':>8}")
    for row in rows:
        row |= {
            "samples_per_second": args.count / row["seconds"],
            "mb_per_second": corpus_bytes / 1e6 / row["seconds"],
            "ratio_to_cp": row["seconds"] / floor,
            "ratio_to_original": row["seconds"] / baseline,
        }
        print(
            f"{row['name']:56} {row['seconds']:8.2f} {row['samples_per_second']:10.0f} {row['mb_per_second']:7.1f} "
            f"{row['peak_rss_mb']:8.0f} {row['ratio_to_cp']:8.2f} {row['ratio_to_original']:8.2f}"
        )
    decode_share = rows[-1]["seconds"] / rows[-2]["seconds"]
    print(f"load + decode runs at {decode_share:.0%} of Pillow's own decoding rate")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"count": args.count, "synthetic": args.synthetic, "corpus_bytes": corpus_bytes, "rows": rows}, indent=2
            )
        )


if __name__ == "__main__":
    main()
