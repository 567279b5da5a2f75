#!/usr/bin/env bash
# Static checks, as CI runs them: lint, formatting and types. Each runs even when an earlier one fails, so one run
# shows everything; the exit status is non-zero when any failed. Needs the dev extra (pip install -e ".[dev]").
set -uo pipefail
cd "$(dirname "$0")/.."

status=0
run() {
  echo "+ $*"
  "$@" || status=1
}
run ruff check src tests benchmarks examples tools
run ruff format --check --output-format concise src tests benchmarks examples tools  # the fix is `ruff format`
run mypy src
exit "$status"
