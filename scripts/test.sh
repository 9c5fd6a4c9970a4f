#!/usr/bin/env bash
# The test command of the README: lint, layering, then every test.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m ruff check src tests bench
lint-imports --no-cache
exec python3 -m pytest -q -p no:cacheprovider "$@"
