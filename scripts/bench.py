"""Export speed and memory against the physical floor (cp -r), the original service and kraken.

First times the command's start-up (`ocr-datasets --help` and `--version`, which must not wait
for datasets to import). Then builds a corpus of N line images in which every image is distinct
(no two have the same sha256), and measures, each job in a fresh process and as the median of
--runs rounds (a round runs every job once), its wall time and, beside it, the CPU time of its
process and of the processes it waited for (worker processes, cp, ketos; not a Ray cluster's),
which tells a row that worked more from one that waited more on a machine whose speed changes:

- cp -r of the images: the floor;
- the original service: copy every image and write a JSONL line per sample (reimplemented here);
- our export per format, parquet only (--no-copy-images), and --format all (export_all), of
  every format and of the three formats issue 16 was written for; each
  must export all N lines; with --engine ray, the trocr export on Ray too (a local instance
  the export starts, of --num-proc CPUs, or the cluster at --ray-address), and its time over
  the local one's;
- re-exports, with views and parquet only: the same lines exported a second time into the same
  output root under a new batch id ("again"), after an untimed first export ("first"); the
  second may reuse the verdicts the first left in <output>/.ocr-datasets/verdicts.sqlite, and
  one more with views does not (--no-cache, the export's cache=False);
- validation alone (decoding every source image), serially and on every core: the part of an
  export that no copy has to do;
- kraken's `ketos compile -f path` on the same lines, with --ketos PATH (kraken is not a
  dependency: install it in a venv of its own, see docs/performance.md);
- load_batch plus decoding every image, against Pillow alone decoding the same bytes (the
  Pillow row holds every image's bytes in memory on purpose).

The corpus is the real Fraktur lines of ../shared/data/ocrd-line-gt (or of --lines DIR), copied
under new ids with the copy's number appended after the end of the TIFF (4 bytes after the
last IFD: decoding and the privacy step are unaffected, but every copy's bytes differ, so
de-duplication keeps all N), each with its .gt.txt beside it (ketos reads it). With
--synthetic it is small generated German lines instead: a pool of at most 1,000 lines rendered
once by ocr_datasets.example, halved and saved as deflate TIFF (~3.3 KB each), written N times
in folders of 10,000, each file with its number appended (rendering costs ~1.8 ms a line, half
an hour for a million; writing a file ~20 us: 100,000 lines took 4.3 s on /dev/shm, 2.2 s of it
the pool, so a million take ~25 s). The time making the corpus took is printed.

--scratch DIR holds the corpus and every job's output (default: the current folder): a RAM
disk (/dev/shm) takes the disk out of the figures, and holds a million files. On a disk,
nothing is deleted until every round is done; on a RAM disk, each job's output is deleted once
it is measured (see `measure`). --only KEY,... runs only those rows, by key:
startup, cp, original, trocr, parquet, llama_vision, generic, all (both --format all rows),
reexport, reexport-parquet, reexport-no-cache, validation-1, validation, ketos (with --ketos)
and decode (both decode rows). A big N needs it: the decode rows hold every image in memory,
and the decode and validation rows only take time.

After the table, each target of issue 16 with its measured ratio and "met" or "NOT met" (a
target whose rows did not run is left out; --json writes them too):

- trocr (validation, parquet, views, images, checksums) <= 1.3 x validation alone, every core;
- trocr parquet only <= 1.15 x validation alone, every core;
- --format all <= 1.4 x trocr, for the three formats the issue was written for (trocr,
  llama_vision, generic: the "three formats (export_all)" row) and for every format
  there is now (the "--format all" row: vlm too, and line_gt, which encodes every line as PNG);
- trocr re-export <= 2.0 x the original service; parquet-only re-export <= 1.5 x;
- ketos >= 8 x the first trocr export and >= 15 x the trocr re-export (with --ketos);
- peak RSS < 400 MB, each export row;
- load_batch + decode >= 75 % of Pillow's decoding rate;
- with --rss-baseline PATH (the --json of a run at a smaller N): each export row's peak RSS
  <= 1.3 x that row's there (the issue: 1,000,000 lines against 100,000).

    .venv/bin/python scripts/bench.py --count 10000
    .venv/bin/python scripts/bench.py --count 10000 --scratch /dev/shm --ketos /tmp/kraken-venv/bin/ketos
    .venv/bin/python scripts/bench.py --count 50000 --runs 1 --json bench-50k.json

Scale: the trocr export, with views and parquet only, of 100,000 and then of 1,000,000
synthetic lines on a RAM disk, the second run comparing its peak RSS with the first's. A million
lines take ~3.3 GB there, and the largest export, trocr, twice that until it is measured and
deleted: ~10 GB of memory at once (check `df -h /dev/shm`; `--only parquet` needs ~7 GB).

    .venv/bin/python scripts/bench.py --synthetic --count 100000 --runs 1 --only trocr,parquet \\
        --scratch /dev/shm --json scale-100k.json
    .venv/bin/python scripts/bench.py --synthetic --count 1000000 --runs 1 --only trocr,parquet \\
        --scratch /dev/shm --json scale-1m.json --rss-baseline scale-100k.json
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

LINE_GT = Path(__file__).resolve().parents[2] / "shared" / "data" / "ocrd-line-gt"

# Synthetic lines: how many distinct lines are rendered, and how many files share a folder.
SYNTHETIC_POOL = 1000
FOLDER_SIZE = 10000

# Each measured job runs in a fresh interpreter and prints its seconds, CPU seconds and peak RSS
# as JSON: {"seconds": ..., "cpu_seconds": ..., "peak_rss_mb": ...}.
_MEASURE = """
import json, resource, sys, time
start, cpu_start = time.perf_counter(), time.process_time()
{body}
seconds = time.perf_counter() - start
usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
cpu_seconds = time.process_time() - cpu_start + usage[1].ru_utime + usage[1].ru_stime
peak_kb = max(each.ru_maxrss for each in usage)
print(json.dumps({{"seconds": seconds, "cpu_seconds": cpu_seconds, "peak_rss_mb": peak_kb / 1024}}))
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

# argv: manifest, output root, format ("all", or formats with commas: export_all), copy images
# (1/0), num_proc (0: the default), batch id, the number of samples every batch must hold, then
# "no-cache" to pass cache=False (left out otherwise: the default) and "ray=[ADDRESS]" for
# engine="ray".
EXPORT_JOB = """
from ocr_datasets import export, export_all, read_manifest
export_format, copy_images, num_proc = sys.argv[3], sys.argv[4] == "1", int(sys.argv[5]) or None
options = dict(batch_id=sys.argv[6], output_dir=sys.argv[2], copy_images=copy_images, num_proc=num_proc, progress=False)
for extra in sys.argv[8:]:
    if extra == "no-cache":
        options["cache"] = False
    elif extra.startswith("ray="):
        options["engine"] = "ray"
        options["ray_address"] = extra.removeprefix("ray=") or None
if export_format == "all" or "," in export_format:
    formats = None if export_format == "all" else export_format.split(",")
    results = export_all(read_manifest(sys.argv[1]), formats=formats, **options)
else:
    results = [export(read_manifest(sys.argv[1]), export_format, **options)]
for result in results:
    if result.sample_count != int(sys.argv[7]):
        sys.exit(f"{result.export_format} exported {result.sample_count} samples, not {sys.argv[7]}")
"""

_VALIDATE = """
from ocr_datasets import read_manifest
from ocr_datasets.validation import validate
validate(read_manifest(sys.argv[1]), num_proc=int(sys.argv[2]) or None)
"""

_LOAD_AND_DECODE = """
# load_batch imports datasets on its first call: imported before the clock starts, as the Pillow
# row imports pyarrow.
import datasets
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

# The rows of an export, whose peak RSS has a target.
# The formats there were when issue 16 set its --format all target.
ISSUE_FORMATS = ("trocr", "llama_vision", "generic")
EXPORT_ROWS = (
    "trocr",
    "trocr-ray",
    "parquet",
    "llama_vision",
    "generic",
    "all",
    "all-three",
    "reexport",
    "reexport-parquet",
    "reexport-no-cache",
)
# Rows that run with another row's --only key: the Ray row with trocr's, the three formats with all's.
_RUN_WITH = {"trocr-ray": "trocr", "all-three": "all"}
ROW_KEYS = (
    "startup",
    "cp",
    "original",
    *(row for row in EXPORT_ROWS if row not in _RUN_WITH),
    "validation-1",
    "validation",
    "ketos",
    "decode",
)
RSS_LIMIT_MB = 400
RSS_GROWTH_LIMIT = 1.3


def distinct(data: bytes, number: int) -> bytes:
    """``data`` (a TIFF) with ``number`` appended after its end: the same image, other bytes."""
    return data + number.to_bytes(4, "big")


def replicate_corpus(folder: Path, count: int, lines: Path) -> Path:
    """``count`` real lines in ``folder``: copies of the lines of ``lines`` under new ids, each
    made distinct by its number appended, each with its ``.gt.txt``, and the manifest
    ``samples.jsonl`` naming them."""
    sources = sorted(lines.glob("*.tif"))
    images = {source: source.read_bytes() for source in sources}
    texts = {source: source.with_suffix(".gt.txt").read_text(encoding="utf-8") for source in sources}
    manifest = folder / "samples.jsonl"
    with manifest.open("w", encoding="utf-8") as records:
        for number in range(count):
            source = sources[number % len(sources)]
            name = f"{number:07d}_{source.name}"
            (folder / name).write_bytes(distinct(images[source], number))
            # kraken's `ketos compile -f path` reads each line's text from <image stem>.gt.txt.
            (folder / f"{name[:-4]}.gt.txt").write_text(texts[source], encoding="utf-8")
            record = {"id": name[:-4], "image_path": name, "ground_truth": texts[source].strip()}
            records.write(json.dumps(record, ensure_ascii=False) + "\n")
    return manifest


def synthetic_corpus(folder: Path, count: int) -> Path:
    """``count`` small synthetic lines in ``folder``: a pool of at most ``SYNTHETIC_POOL`` lines
    rendered by ``ocr_datasets.example``, halved and saved as deflate TIFF, written ``count``
    times with each file's number appended, in folders of ``FOLDER_SIZE``."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from PIL import Image

    from ocr_datasets.example import example_samples

    pool = []
    for sample in example_samples(min(count, SYNTHETIC_POOL)):
        line = Image.open(io.BytesIO(sample.read_image_bytes()))
        image = line.resize((line.width // 2, line.height // 2), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        image.save(buffer, format="TIFF", compression="tiff_deflate")
        pool.append((buffer.getvalue(), sample.ground_truth))
    manifest = folder / "samples.jsonl"
    with manifest.open("w", encoding="utf-8") as records:
        for number in range(count):
            subfolder = f"images/{number // FOLDER_SIZE:03d}"
            if number % FOLDER_SIZE == 0:
                (folder / subfolder).mkdir(parents=True)
            data, text = pool[number % len(pool)]
            name = f"{subfolder}/{number:07d}.tif"
            (folder / name).write_bytes(distinct(data, number))
            records.write(json.dumps({"id": f"line-{number:07d}", "image_path": name, "ground_truth": text}) + "\n")
    return manifest


def make_corpus(folder: Path, count: int, synthetic: bool, lines: Path) -> Path:
    if synthetic:
        return synthetic_corpus(folder, count)
    return replicate_corpus(folder, count, lines)


def corpus_images(manifest: Path) -> Iterator[Path]:
    """The image of each record of ``manifest``, one at a time (a million paths held at once
    would take ~200 MB)."""
    with manifest.open(encoding="utf-8") as records:
        for record in records:
            yield manifest.parent / json.loads(record)["image_path"]


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


Job = Callable[[Path], dict]


def on_ram_disk(folder: Path) -> bool:
    """Whether ``folder`` is on a RAM disk (tmpfs, as /dev/shm), by the mount table of Linux;
    False where there is none to read."""
    try:
        mounts = Path("/proc/self/mounts").read_text(encoding="utf-8").splitlines()
    except OSError:
        return False
    types = {}
    for line in mounts:
        _, mount_point, filesystem, *_ = line.split()
        # The table writes a space, tab, newline or backslash in a mount point in octal (\040).
        types[re.sub(r"\\([0-7]{3})", lambda code: chr(int(code[1], 8)), mount_point)] = filesystem
    place = folder.resolve()
    # The innermost mount holding it: the longest of the mount points it lies under.
    mounted_at = max((point for point in types if place.is_relative_to(point)), key=len, default=None)
    return mounted_at is not None and types[mounted_at] in ("tmpfs", "ramfs")


def measure(jobs: list[tuple[str, str, Job]], runs: int, scratch: Path) -> list[dict]:
    """Median wall and CPU time and largest peak RSS of each ``job(folder)`` over ``runs``
    rounds, each run in a new folder of ``scratch``.

    Rounds run every job once, in turn, so that no job gets all its runs under one disk state.
    On a disk, nothing is deleted until every round is done: after a folder of thousands of
    files is deleted, ext4 creates files ten times slower for a while (perf: ``ext4_create``
    spends its time in ``recently_deleted``, skipping the inodes just freed), so whichever job
    came after a deletion paid for it: 10,000 creates took 0.4 s, or 5 s after a deletion. On a
    RAM disk a deletion costs nothing later, and what is kept is memory: a full run of 10,000
    lines kept 18 GB on /dev/shm, leaving under 2 GB free by its third round, whose exports
    took up to 60 % more CPU time than the same exports with the memory free. There, each job's
    folder is deleted as soon as it is measured."""
    results: dict[str, list[dict]] = {key: [] for key, _, _ in jobs}
    delete_at_once = on_ram_disk(scratch)
    with contextlib.ExitStack() as scratch_folders:
        for _ in range(runs):
            for key, _, job in jobs:
                folder = tempfile.TemporaryDirectory(dir=scratch, prefix="bench-job-")
                if delete_at_once:
                    with folder as path:
                        results[key].append(job(Path(path)))
                else:
                    results[key].append(job(Path(scratch_folders.enter_context(folder))))
    return [
        {
            "key": key,
            "name": name,
            "seconds": statistics.median(r["seconds"] for r in results[key]),
            "cpu_seconds": statistics.median(r["cpu_seconds"] for r in results[key]),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in results[key]),
        }
        for key, name, _ in jobs
    ]


# Issue 16's targets on the ratio of two rows' times: (what, row, against row, comparison, limit).
RATIO_TARGETS = [
    ("trocr / validation alone, every core", "trocr", "validation", "<=", 1.3),
    ("trocr parquet only / validation alone, every core", "parquet", "validation", "<=", 1.15),
    ("three formats (export_all) / trocr", "all-three", "trocr", "<=", 1.4),
    ("--format all (every format) / trocr", "all", "trocr", "<=", 1.4),
    ("trocr re-export / original service", "reexport", "original", "<=", 2.0),
    ("trocr parquet only re-export / original service", "reexport-parquet", "original", "<=", 1.5),
    ("ketos / first trocr export", "ketos", "trocr", ">=", 8),
    ("ketos / trocr re-export", "ketos", "reexport", ">=", 15),
]


def check_targets(rows: dict[str, dict], baseline: dict | None) -> list[dict]:
    """Issue 16's targets whose rows were measured: each with its measured value, how it must
    compare with its limit, and whether it does."""
    targets = []
    compare = {"<=": float.__le__, "<": float.__lt__, ">=": float.__ge__}

    def target(text: str, measured: float, comparison: str, limit: float, unit: str = "x") -> None:
        met = compare[comparison](float(measured), float(limit))
        targets.append(
            {"target": text, "measured": measured, "comparison": comparison, "limit": limit, "unit": unit, "met": met}
        )

    def ratio(key: str, of: str) -> float:
        return rows[key]["seconds"] / rows[of]["seconds"]

    def have(*keys: str) -> bool:
        return all(key in rows for key in keys)

    for text, key, of, comparison, limit in RATIO_TARGETS:
        if have(key, of):
            target(text, ratio(key, of), comparison, limit)
    for key in EXPORT_ROWS:
        if key in rows:
            target(f"peak RSS of {key}", rows[key]["peak_rss_mb"], "<", RSS_LIMIT_MB, "MB")
            if baseline and key in baseline["rows"]:
                growth = rows[key]["peak_rss_mb"] / baseline["rows"][key]["peak_rss_mb"]
                target(f"peak RSS of {key} / at {baseline['count']:,} lines", growth, "<=", RSS_GROWTH_LIMIT)
    if have("load", "pillow"):
        # The rates' ratio: Pillow's seconds over load_batch's.
        target("load_batch + decode / Pillow's rate", 100 * ratio("pillow", "load"), ">=", 75, "%")
    return targets


def read_baseline(path: str) -> dict:
    """The count and the rows by key of an earlier run's --json."""
    figures = json.loads(Path(path).read_text(encoding="utf-8"))
    return {"count": figures["count"], "rows": {row["key"]: row for row in figures["rows"] if "key" in row}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=10000, help="line images in the corpus (default: 10000)")
    parser.add_argument(
        "--synthetic", action="store_true", help="small generated German lines instead of the real Fraktur lines"
    )
    parser.add_argument(
        "--lines",
        metavar="DIR",
        type=Path,
        default=LINE_GT,
        help=f"folder of real lines (name.tif + name.gt.txt) to replicate (default: {LINE_GT})",
    )
    parser.add_argument(
        "--scratch",
        metavar="DIR",
        type=Path,
        default=Path.cwd(),
        help="folder for the corpus and every job's output, e.g. /dev/shm (default: the current folder)",
    )
    parser.add_argument("--only", metavar="KEY,...", help=f"run only these rows: {', '.join(ROW_KEYS)}")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement; the median is reported (default: 3)")
    parser.add_argument(
        "--num-proc",
        type=int,
        default=0,
        help="--num-proc for our exports (default: 0, the export's own default of one process per core)",
    )
    parser.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="ray: time the trocr export on Ray too, beside the local one (default: local only)",
    )
    parser.add_argument(
        "--ray-address",
        metavar="ADDRESS",
        help="with --engine ray, the Ray cluster to run it on (default: a local instance started by the export)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the figures and targets as JSON")
    parser.add_argument(
        "--rss-baseline",
        metavar="PATH",
        help="the --json of a run at a smaller count: each export row's peak RSS must stay within 1.3 x its own there",
    )
    parser.add_argument(
        "--ketos", metavar="PATH", help="kraken's ketos executable, to time `ketos compile -f path` on the same lines"
    )
    args = parser.parse_args()
    only = set(ROW_KEYS) if args.only is None else {key.strip() for key in args.only.split(",") if key.strip()}
    if unknown := only - set(ROW_KEYS):
        parser.error(f"--only: unknown rows {', '.join(sorted(unknown))}: choose from {', '.join(ROW_KEYS)}")
    if args.ketos and args.synthetic:
        parser.error("--ketos needs the real lines (ketos reads each line's text from a .gt.txt beside its image)")
    if args.ray_address and args.engine != "ray":
        parser.error("--ray-address needs --engine ray")
    if args.only is not None and "ketos" in only and not args.ketos:
        parser.error("--only ketos needs --ketos PATH")
    if not args.synthetic and not any(args.lines.glob("*.tif")):
        parser.error(
            f"no line images in {args.lines}: "
            "pass --lines DIR (tests/data/ocrd-line-gt has 114 real lines) or --synthetic"
        )
    if not args.scratch.is_dir():
        parser.error(f"--scratch {args.scratch}: no such folder")
    baseline = read_baseline(args.rss_baseline) if args.rss_baseline else None

    startup = {}
    if "startup" in only:
        console_script = str(Path(sys.executable).with_name("ocr-datasets"))
        for flag in ("--help", "--version"):
            startup[flag] = command_seconds([console_script, flag], args.runs)
            print(f"ocr-datasets {flag}: {startup[flag]:.2f} s (target: under 0.3 s)")

    with tempfile.TemporaryDirectory(dir=args.scratch, prefix="bench-corpus-") as corpus_dir:
        corpus = Path(corpus_dir)
        start = time.perf_counter()
        manifest = make_corpus(corpus, args.count, args.synthetic, args.lines)
        corpus_seconds = time.perf_counter() - start
        corpus_bytes = sum(image.stat().st_size for image in corpus_images(manifest))
        print(
            f"made {args.count:,} {'synthetic' if args.synthetic else 'real'} lines ({corpus_bytes / 1e6:.0f} MB) "
            f"in {args.scratch} in {corpus_seconds:.2f} s"
        )
        count, proc = str(args.count), str(args.num_proc)
        ray_address = args.ray_address or ""

        def export_args(output: Path, export_format: str, copy_images: bool, batch_id: str) -> list[str]:
            return [str(manifest), str(output), export_format, "1" if copy_images else "0", proc, batch_id, count]

        def export_job(export_format: str, copy_images: bool, *engine: str) -> Job:
            return lambda scratch: run_job(
                EXPORT_JOB, *export_args(scratch / "out", export_format, copy_images, "bench"), *engine
            )

        def reexport_job(copy_images: bool, cache: bool = True) -> Job:
            def job(scratch: Path) -> dict:
                # The first export is not timed: it leaves what the second may reuse.
                run_job(EXPORT_JOB, *export_args(scratch / "out", "trocr", copy_images, "first"))
                again = export_args(scratch / "out", "trocr", copy_images, "again")
                return run_job(EXPORT_JOB, *again, *([] if cache else ["no-cache"]))

            return job

        def copy_floor(scratch: Path) -> dict:
            images = scratch / "images"
            command = f"import subprocess; subprocess.run(['cp', '-r', {str(corpus)!r}, {str(images)!r}], check=True)"
            return run_job(command)

        def ketos_compile(scratch: Path) -> dict:
            file_list = scratch / "lines.txt"
            with file_list.open("w", encoding="utf-8") as paths:
                paths.writelines(f"{image}\n" for image in corpus_images(manifest))
            command = [args.ketos, "compile", "-f", "path", "-o", str(scratch / "dataset.arrow"), "-F", str(file_list)]
            return run_job(f"import subprocess; subprocess.run({command!r}, check=True, capture_output=True)")

        def load_and_decode(body: str) -> Job:
            def job(scratch: Path) -> dict:
                run_job(EXPORT_JOB, *export_args(scratch, "trocr", False, "bench"))
                return run_job(body, str(manifest), str(scratch))

            return job

        # (--only key, row key, name, job)
        every_job: list[tuple[str, str, str, Job]] = [
            ("cp", "cp", "cp -r (floor)", copy_floor),
            (
                "original",
                "original",
                "original service (copy + JSONL)",
                lambda scratch: run_job(_ORIGINAL_SERVICE, str(manifest), str(scratch / "out")),
            ),
            ("trocr", "trocr", "trocr (validation, parquet, views, images, checksums)", export_job("trocr", True)),
            *(
                [
                    (
                        "trocr",
                        "trocr-ray",
                        "trocr --engine ray",
                        export_job("trocr", True, f"ray={ray_address}"),
                    )
                ]
                if args.engine == "ray"
                else []
            ),
            ("parquet", "parquet", "trocr parquet only (--no-copy-images)", export_job("trocr", False)),
            ("llama_vision", "llama_vision", "llama_vision", export_job("llama_vision", True)),
            ("generic", "generic", "generic", export_job("generic", True)),
            (
                "all",
                "all-three",
                "three formats (export_all)",
                export_job(",".join(ISSUE_FORMATS), True),
            ),
            ("all", "all", "--format all", export_job("all", True)),
            ("reexport", "reexport", "trocr re-export (same lines, new batch id)", reexport_job(True)),
            ("reexport-parquet", "reexport-parquet", "trocr parquet only re-export", reexport_job(False)),
            ("reexport-no-cache", "reexport-no-cache", "trocr re-export --no-cache", reexport_job(True, cache=False)),
            (
                "validation-1",
                "validation-1",
                "validation alone, 1 process (decodes every image)",
                lambda scratch: run_job(_VALIDATE, str(manifest), "1"),
            ),
            (
                "validation",
                "validation",
                "validation alone, every core",
                lambda scratch: run_job(_VALIDATE, str(manifest), "0"),
            ),
            *([("ketos", "ketos", "ketos compile -f path (kraken)", ketos_compile)] if args.ketos else []),
            ("decode", "load", "load_batch + decode every image", load_and_decode(_LOAD_AND_DECODE)),
            ("decode", "pillow", "Pillow alone decoding the same bytes", load_and_decode(_PILLOW_DECODE)),
        ]
        jobs = [(key, name, job) for only_key, key, name, job in every_job if only_key in only]
        rows = measure(jobs, args.runs, args.scratch)

    by_key = {row["key"]: row for row in rows}
    floor, original = by_key.get("cp"), by_key.get("original")
    print(
        f"N = {args.count} {'synthetic' if args.synthetic else 'real'} lines, {corpus_bytes / 1e6:.0f} MB, median of "
        f"{args.runs} run(s)"
    )
    columns = {"seconds": 8, "CPU s": 7, "samples/s": 10, "MB/s": 7, "peak MB": 8, "x cp -r": 8, "x orig.": 8}
    print(f"{'':56}", *(f"{name:>{width}}" for name, width in columns.items()))
    for row in rows:
        row |= {
            "samples_per_second": args.count / row["seconds"],
            "mb_per_second": corpus_bytes / 1e6 / row["seconds"],
            "ratio_to_cp": row["seconds"] / floor["seconds"] if floor else None,
            "ratio_to_original": row["seconds"] / original["seconds"] if original else None,
        }
        ratios = "".join(
            f" {'':>8}" if value is None else f" {value:8.2f}"
            for value in (row["ratio_to_cp"], row["ratio_to_original"])
        )
        print(
            f"{row['name']:56} {row['seconds']:8.2f} {row['cpu_seconds']:7.2f} {row['samples_per_second']:10.0f} "
            f"{row['mb_per_second']:7.1f} {row['peak_rss_mb']:8.0f}{ratios}".rstrip()
        )

    if "trocr-ray" in by_key and "trocr" in by_key:
        print(f"trocr --engine ray / trocr: {by_key['trocr-ray']['seconds'] / by_key['trocr']['seconds']:.2f} x")
    targets = check_targets(by_key, baseline)
    if targets:
        print("targets (issue 16):")
    for target in targets:
        unit = target["unit"]
        measured = f"{target['measured']:.{2 if unit == 'x' else 0}f} {unit}"
        limit = f"{target['comparison']} {target['limit']:g} {unit}"
        print(f"  {target['target']:58} {measured:>10}  {limit:10} {'met' if target['met'] else 'NOT met'}")
    if args.json:
        figures = {
            "count": args.count,
            "synthetic": args.synthetic,
            "scratch": str(args.scratch),
            "corpus_bytes": corpus_bytes,
            "corpus_seconds": corpus_seconds,
            "startup_seconds": startup,
            "rows": rows,
            "targets": targets,
        }
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
