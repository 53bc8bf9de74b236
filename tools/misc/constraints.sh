#!/usr/bin/env bash
# The pinned constraint files, made and checked by the interpreter each is meant for (not by
# `pip --python-version` from another one, which does not see every package's Requires-Python:
# constraints-py310.txt once pinned networkx 3.6.1, which needs 3.11).
#
#   bash tools/misc/constraints.sh check [PYTHON...]   each PYTHON (default: those of python3.10,
#       python3.11, python3.12 that run here) resolves its file -- constraints-py310.txt for 3.10,
#       constraints.txt for 3.11 / 3.12 -- in a throwaway venv with `pip install --dry-run`; exits
#       non-zero naming the pins it refuses. No pin installs anything. About 20 s a Python.
#   bash tools/misc/constraints.sh resolve PYTHON      rewrites that Python's file: the same torch,
#       torchvision, mmengine and mmdet as constraints.txt (mmcv is built from source by
#       setup_env.sh) and, for everything else requirements/base.txt pulls in, pip's newest release
#       that installs on PYTHON.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
MODE=${1:-}
shift || true
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
STACK=(torch torchvision mmengine mmdet)  # kept identical across the files

die() { echo "[constraints] ERROR: $*" >&2; exit 1; }
minor_of() { "$1" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")'; }
file_for() {
  case $1 in
    3.10) echo requirements/constraints-py310.txt ;;
    3.11|3.12) echo requirements/constraints.txt ;;
    *) return 1 ;;
  esac
}
# A throwaway venv of PYTHON with a current pip (PEP 658 metadata: resolving downloads no wheels).
venv_of() {
  local venv=$TMP/venv-$2
  "$1" -m venv "$venv" >/dev/null || die "$1 cannot make a venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null \
    || die "could not upgrade pip in a $2 venv (network?)"
  echo "$venv/bin/python"
}

case $MODE in
check)
  PYTHONS=("$@")
  if [ ${#PYTHONS[@]} = 0 ]; then
    for candidate in python3.10 python3.11 python3.12; do
      if command -v "$candidate" >/dev/null && "$candidate" -c '' 2>/dev/null; then
        PYTHONS+=("$candidate")
      else  # pyenv's shim refuses a version that is installed but not selected: take it directly
        found=$(ls -d "$(pyenv root 2>/dev/null || echo /nonexistent)"/versions/"${candidate#python}".*/bin/"$candidate" 2>/dev/null | tail -1)
        if [ -n "$found" ] && "$found" -c '' 2>/dev/null; then PYTHONS+=("$found"); fi
      fi
    done
  fi
  [ ${#PYTHONS[@]} -gt 0 ] || die "no Python 3.10-3.12 found to check with"
  failed=0
  for py in "${PYTHONS[@]}"; do
    minor=$(minor_of "$py") || die "$py does not run"
    file=$(file_for "$minor") || die "$py is Python $minor: no constraint file is meant for it"
    t0=$SECONDS
    vpy=$(venv_of "$py" "$minor")
    # Every pin at once, each checked against this interpreter's version and platform; --no-deps:
    # the file is the whole set, and a pin pip refuses is named in its message. mmcv's pin is its
    # source release, which setup_env.sh builds against the venv's torch: not resolvable alone.
    grep -v '^mmcv==' "$file" > "$TMP/pins-$minor.txt"
    if out=$("$vpy" -m pip install --disable-pip-version-check --dry-run --ignore-installed --no-deps \
          -r "$TMP/pins-$minor.txt" 2>&1); then
      echo "[constraints] $file installs on Python $minor ($py): $(grep -c '==' "$file") pins ($(( SECONDS - t0 )) s)"
    else
      echo "[constraints] $file does NOT install on Python $minor ($py):" >&2
      echo "$out" | grep -E '^ERROR|requires a different Python|No matching distribution' >&2 || echo "$out" | tail -5 >&2
      failed=1
    fi
  done
  exit $failed
  ;;
resolve)
  [ $# = 1 ] || die "usage: constraints.sh resolve PYTHON"
  py=$1
  minor=$(minor_of "$py") || die "$py does not run"
  file=$(file_for "$minor") || die "$py is Python $minor: no constraint file is meant for it"
  vpy=$(venv_of "$py" "$minor")
  for name in "${STACK[@]}"; do grep -i "^$name==" requirements/constraints.txt; done > "$TMP/stack.txt"
  "$vpy" -m pip install -q --disable-pip-version-check --dry-run --ignore-installed \
    --report "$TMP/report.json" -c "$TMP/stack.txt" -r requirements/base.txt \
    || die "pip cannot resolve requirements/base.txt with $(tr '\n' ' ' < "$TMP/stack.txt")on Python $minor"
  {
    if [ "$minor" = 3.10 ]; then
      echo "# Exact versions for .venv on Python 3.10 (tools/misc/setup_env.sh picks this file there): the same"
      echo "# torch / torchvision / mmengine / mmdet as constraints.txt (mmcv is built from source), and for"
      echo "# everything else pip's newest release that installs on 3.10."
    else
      echo "# Exact versions for .venv on Python 3.11 and 3.12 (tools/misc/setup_env.sh). mmcv 2.1.0 is built"
      echo "# from its source release. setuptools is not pinned here: torch asks for >= 77, and setup_env.sh"
      echo "# then puts 69.5.1 back (mmengine 0.10.7 and mmcv's setup.py import pkg_resources)."
    fi
    echo "# Made by a real Python $minor interpreter, not pip --python-version (which misses Requires-Python):"
    echo "#   bash tools/misc/constraints.sh resolve python$minor   ($(date -u +%Y-%m-%d), $("$vpy" -m pip --version | cut -d' ' -f1-2))"
    echo "# and checked in CI by: bash tools/misc/constraints.sh check"
    "$vpy" - "$TMP/report.json" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
pins = {item['metadata']['name']: item['metadata']['version'] for item in report['install']}
pins.pop('setuptools', None)  # see the header of constraints.txt
for name in sorted(pins, key=str.lower):
    print(f'{name}=={pins[name]}')
EOF
    echo "# built from its source release by setup_env.sh, against the torch above"
    grep '^mmcv==' requirements/constraints.txt
  } > "$TMP/out.txt"
  mv "$TMP/out.txt" "$file"
  echo "[constraints] wrote $file: $(grep -c '==' "$file") pins for Python $minor"
  ;;
*)
  die "usage: constraints.sh check [PYTHON...] | resolve PYTHON"
  ;;
esac
