#!/usr/bin/env bash
# CI step (.ci/run) for the offline install path of a GPU node (README, "Offline install on a GPU node"):
#
#   1. build a wheel folder from requirements.lock (scripts/build_wheels.sh; needs the registries);
#   2. a fresh copy of this checkout (no .venv), `setup.sh --wheels DIR` in a network namespace with no network
#      (`unshare -n`, where permitted), then a few real tests in the new .venv;
#   3. a stand-in for a node's own torch (a separate venv with the lock's torch, installed from DIR), a second
#      fresh copy, `PYTHON=<that venv's python> setup.sh --wheels DIR --system-torch` without network, and
#      checks that the new .venv uses that torch (no copy of its own) and passes the same tests.
#
#   bash scripts/check_offline_install.sh            # a few minutes (~0.5 GB of wheels, three venvs)
#   KEEP=1 bash scripts/check_offline_install.sh     # keep the work folder (printed) for a look
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
PY=${PYTHON:-python3}
WORK=$(mktemp -d -t gq-offline.XXXXXX)
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$WORK"' EXIT
say() { echo "[offline-install] $*"; }

# no network for the installs, when this machine lets us make a network namespace (root, unshare)
if unshare -n true 2>/dev/null; then
  NONET=(unshare -n)
  say "installs run in a network namespace with no network (unshare -n)"
else
  NONET=()
  say "unshare -n is not permitted here: installs run with the network present (pip still gets --no-index)"
fi
TESTS=(tests/test_torch_range.py tests/test_capture.py -k "(cpu and (disjoint or autograd)) or in_backward or torch_range")

say "1/3 wheel folder from requirements.lock"
bash scripts/build_wheels.sh "$WORK/wheels"

clone() {  # a fresh copy of the checkout's files (tracked and new, not ignored: no .venv, no build output)
  mkdir -p "$1"
  (cd "$REPO" && git ls-files -z --cached --others --exclude-standard \
    | tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -xf - -C "$1"
}

say "2/3 fresh copy, setup.sh --wheels (offline), tests"
clone "$WORK/a"
(cd "$WORK/a" && "${NONET[@]}" env PYTHON="$PY" bash scripts/setup.sh --wheels "$WORK/wheels")
(cd "$WORK/a" && .venv/bin/python -c "import gradient_quarantine, trl, torch; print('torch', torch.__version__, torch.__file__)")
(cd "$WORK/a" && .venv/bin/python -m pytest -p no:cacheprovider "${TESTS[@]}")

say "3/3 a node's own torch, fresh copy, setup.sh --wheels --system-torch (offline), tests"
"$PY" -m venv "$WORK/node"
torch_pin=$(grep -iE '^torch==' requirements.lock)
"${NONET[@]}" env PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS= "$WORK/node/bin/python" -m pip install -q \
  --disable-pip-version-check --no-index --find-links "$WORK/wheels" -c requirements.lock "$torch_pin"
mkdir -p "$WORK/wheels-node"
for w in "$WORK"/wheels/*; do case "$(basename "$w")" in torch-*) ;; *) ln "$w" "$WORK/wheels-node/" ;; esac; done
clone "$WORK/b"
(cd "$WORK/b" && "${NONET[@]}" env PYTHON="$WORK/node/bin/python" bash scripts/setup.sh --wheels "$WORK/wheels-node" --system-torch)
(cd "$WORK/b" && .venv/bin/python - "$WORK/node" <<'PYEOF'
import pathlib, sys, sysconfig
import torch
node = pathlib.Path(sys.argv[1]).resolve()
here = pathlib.Path(torch.__file__).resolve()
own = pathlib.Path(sysconfig.get_paths()["purelib"]) / "torch"
assert node in here.parents, f"torch comes from {here}, not from the node's environment {node}"
assert not own.exists(), f".venv holds a torch of its own at {own}"
import gradient_quarantine, trl  # noqa: E401,F401
print("torch", torch.__version__, "from", here.parent, "(the node's)")
PYEOF
)
(cd "$WORK/b" && .venv/bin/python -m pytest -p no:cacheprovider "${TESTS[@]}")
say "ok: offline install from a wheel folder, with its own torch and with the node's"
