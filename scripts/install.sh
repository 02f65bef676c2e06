#!/usr/bin/env bash
# Creates .venv beside the project (if missing) and installs the project into it, editable,
# with the extras given as arguments (e.g. "test"). Everything the project needs comes from here.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
extras=$(IFS=,; echo "$*")
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extras:+[$extras]}"
