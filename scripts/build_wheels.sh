#!/usr/bin/env bash
# Build a wheel folder for an offline install (a cluster GPU node without network): every package of
# requirements.lock at its pinned version, the project's own wheel, and the build tools an editable install
# needs. Run it on a machine with registry access; copy DIR to the node; there run
#
#   bash scripts/setup.sh --wheels DIR                    # everything from DIR, torch included
#   bash scripts/setup.sh --wheels DIR --system-torch     # keep the node's own (CUDA) torch
#
# Usage:
#   bash scripts/build_wheels.sh DIR                                   # for this machine's Python and platform
#   bash scripts/build_wheels.sh DIR --python-version 3.12 --no-torch  # for a node with Python 3.12 and its torch
#
# Options:
#   --python-version X.Y   wheels for another CPython (binary wheels only, for --platform); default: this one
#   --platform TAG         platform tag(s) for --python-version, repeatable (default: the manylinux x86_64 tags)
#   --no-torch             leave torch out (the node brings its own; install with --system-torch)
#
# torch: the lock pins the CPU build this project is developed and tested on (2.13.0). pip takes it from
# wherever it is configured to find torch (here a local file; elsewhere PyTorch's CPU wheel index, e.g. through
# --extra-index-url in pip.conf); a plain PyPI `torch` on Linux is the CUDA build, several GB. A GPU node keeps its
# own torch: pyproject.toml states the range the project supports (`--system-torch` checks it).
#
# DIR/gq-wheels.txt records what the folder was built for; setup.sh --wheels checks it.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "[build_wheels] ERROR: $*" >&2; exit 1; }
DIR=""
PYVER=""
PLATFORMS=()
NO_TORCH=0
while [ $# -gt 0 ]; do
  case "$1" in
    --python-version) PYVER=${2:?}; shift 2 ;;
    --platform) PLATFORMS+=("${2:?}"); shift 2 ;;
    --no-torch) NO_TORCH=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) [ -z "$DIR" ] || die "one DIR only"; DIR=$1; shift ;;
  esac
done
[ -n "$DIR" ] || die "usage: bash scripts/build_wheels.sh DIR [--python-version X.Y] [--platform TAG] [--no-torch]"
PY=${PYTHON:-python3}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
export PIP_DISABLE_PIP_VERSION_CHECK=1

reqs=$(mktemp)
trap 'rm -f "$reqs"' EXIT
if [ "$NO_TORCH" = 1 ]; then grep -viE '^torch==' requirements.lock >"$reqs"; else cp requirements.lock "$reqs"; fi

target=(--only-binary=:all:)  # wheels only: nothing to build on the node
if [ -n "$PYVER" ]; then
  [ ${#PLATFORMS[@]} -gt 0 ] || PLATFORMS=(manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64
                                          manylinux2014_x86_64 manylinux1_x86_64)
  target+=(--python-version "$PYVER" --implementation cp)
  for p in "${PLATFORMS[@]}"; do target+=(--platform "$p"); done
else
  PYVER=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
fi

echo "[build_wheels] requirements.lock ($(grep -c . "$reqs") packages$([ "$NO_TORCH" = 1 ] && echo ', torch left out')) for Python $PYVER -> $DIR"
# The lock is a complete freeze, so --no-deps: exactly these versions, nothing resolved again.
"$PY" -m pip download -q --no-deps "${target[@]}" -r "$reqs" -d "$DIR"
# setuptools + wheel: the build backend of `pip install -e .` (pyproject.toml's build-system), offline too
"$PY" -m pip download -q --no-deps "${target[@]}" "setuptools>=68" wheel -d "$DIR"
# the project itself (pure Python: one wheel for every Python >= 3.10)
"$PY" -m pip wheel -q --no-deps -w "$DIR" .

{
  echo "python=$PYVER"
  echo "torch=$([ "$NO_TORCH" = 1 ] && echo none || grep -iE '^torch==' requirements.lock | cut -d= -f3)"
  echo "lock_sha256=$(sha256sum requirements.lock | cut -d' ' -f1)"
  echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$DIR/gq-wheels.txt"
n=$(find "$DIR" -maxdepth 1 -name '*.whl' | wc -l)
echo "[build_wheels] done: $n wheels, $(du -sh "$DIR" | cut -f1) ($DIR/gq-wheels.txt)"
