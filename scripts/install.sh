#!/usr/bin/env bash
# Creates .venv beside the project (if missing) and installs the project into it, editable,
# with the extras given as arguments (e.g. "test"). Everything the project needs comes from here.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
extras=$(IFS=,; echo "$*")
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extras:+[$extras]}"
# pip compiles an installed package's bytecode, but an editable install's only when it is first
# imported, which PYTHONDONTWRITEBYTECODE forbids: then every run compiled the package again
# (~85 ms at the start of each export, measured with it set).
.venv/bin/python -m compileall -q ocr_datasets builders
