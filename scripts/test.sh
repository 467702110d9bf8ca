#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the whole test suite: lint, layer contracts, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "• ruff"
.venv/bin/ruff check .
echo "• import layers"
.venv/bin/lint-imports
echo "• pytest"
exec .venv/bin/pytest -q -p no:cacheprovider "$@"
