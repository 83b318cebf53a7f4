#!/usr/bin/env bash
# Set up the environment (if needed), lint, and run the test suite. This is the README's test command and
# what CI (.ci/run) calls.
#
#   bash scripts/test.sh            # everything but tests marked slow
#   bash scripts/test.sh -m ""      # everything, slow tests included
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check gradient_quarantine tests bench
if [ "$#" -eq 0 ]; then set -- -m "not slow"; fi
exec .venv/bin/python -m pytest "$@"
