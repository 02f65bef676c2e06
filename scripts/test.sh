#!/usr/bin/env bash
# The whole test suite, after installing the project with its test extras into .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh test
exec .venv/bin/python -m pytest "$@"
