#!/usr/bin/env bash
# The main job on the built-in example: synthetic German text lines, exported to every
# format under ./ocr-exports (or $OCR_EXPORT_PATH), then loaded back offline.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
export HF_HUB_OFFLINE=1
.venv/bin/ocr-datasets example demo-input
.venv/bin/ocr-datasets export --input demo-input/samples.jsonl --format all --batch-id demo --overwrite
root="${OCR_EXPORT_PATH:-ocr-exports}"
.venv/bin/python -c "from datasets import load_dataset; print(load_dataset('$root/llama-vision/demo', cache_dir='$root/.load-cache'))"
