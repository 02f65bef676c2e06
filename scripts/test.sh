#!/usr/bin/env bash
# The whole test suite, after installing the project with its test extras into .venv, and the
# linters before it: ruff (lint, format) over the code, mypy over ocr_datasets and builders, as
# pyproject.toml configures them. `.venv/bin/ruff format` fixes what the format check reports.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh test
.venv/bin/ruff check --quiet
.venv/bin/ruff format --check --quiet
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
