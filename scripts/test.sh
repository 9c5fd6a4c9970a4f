#!/usr/bin/env bash
# The test command of the README: lint, layering, types, then every test, all from the venv scripts/setup.sh made
# (NANOKUBE_VENV, default ./.venv).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${NANOKUBE_VENV:-$PWD/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "nanokube test: no venv at $VENV; run bash scripts/setup.sh first" >&2
  exit 2
fi
"$VENV/bin/python" -m ruff check src tests bench
"$VENV/bin/lint-imports" --no-cache
"$VENV/bin/python" -m mypy  # strict on the packages [tool.mypy] in pyproject.toml names
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
