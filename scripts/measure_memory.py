"""Peak memory of an export as the corpus grows: it must stay flat.

Replicates the real Fraktur lines of ../shared/data/ocrd-line-gt (hard links under new ids, so
the corpus costs no disk) to each N, exports it in a fresh process per run (keeping the
replicas, which de-duplication would otherwise fold into 363) and prints wall time and peak RSS.

    .venv/bin/python scripts/measure_memory.py --sizes 2000 10000 20000 --format trocr
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

LINE_GT = Path(__file__).resolve().parents[2] / "shared" / "data" / "ocrd-line-gt"

_EXPORT_AND_REPORT = """
import json, resource, sys, time
from ocr_datasets import export, read_manifest
manifest, output, export_format, copy_images = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
start = time.perf_counter()
export(read_manifest(manifest), export_format, batch_id="bench", output_dir=output, copy_images=copy_images, keep_duplicates=True, progress=False)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def replicate_corpus(folder: Path, count: int) -> Path:
    sources = sorted(LINE_GT.glob("*.tif"))
    texts = {source: source.with_suffix(".gt.txt").read_text(encoding="utf-8").strip() for source in sources}
    manifest = folder / "samples.jsonl"
    with manifest.open("w", encoding="utf-8") as lines:
        for number in range(count):
            source = sources[number % len(sources)]
            name = f"{number:07d}_{source.name}"
            os.link(source, folder / name)
            # kraken's `ketos compile -f path` reads each line's text from <image stem>.gt.txt.
            os.link(source.with_suffix(".gt.txt"), folder / f"{name[:-4]}.gt.txt")
            lines.write(json.dumps({"id": name[:-4], "image_path": name, "ground_truth": texts[source]}, ensure_ascii=False) + "\n")
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 10000, 20000])
    parser.add_argument("--format", default="trocr")
    parser.add_argument("--no-copy-images", dest="copy_images", action="store_false")
    args = parser.parse_args()
    print(f"{'N':>8}  {'seconds':>8}  {'samples/s':>10}  {'peak RSS MB':>12}")
    for count in args.sizes:
        with tempfile.TemporaryDirectory(dir=Path.cwd()) as scratch:
            manifest = replicate_corpus(Path(scratch), count)
            completed = subprocess.run(
                [sys.executable, "-c", _EXPORT_AND_REPORT, str(manifest), str(Path(scratch) / "out"), args.format, "1" if args.copy_images else "0"],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(Path(scratch) / "hf")},
            )
            figures = json.loads(completed.stdout.strip().splitlines()[-1])
            print(f"{count:>8}  {figures['seconds']:>8.2f}  {count / figures['seconds']:>10.0f}  {figures['peak_rss_mb']:>12.0f}")


if __name__ == "__main__":
    main()
