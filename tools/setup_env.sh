#!/usr/bin/env bash
# Sets up .venv for tsd-mmdet on a fresh machine: pinned torch/mmengine/mmdet, mmcv 2.1.0 built from
# its source release (wheel cached by torch and Python version), then this package editable.
# Re-running on a machine that has it checks a stamp and returns in seconds.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
VENV=${TSD_VENV:-$ROOT/.venv}
PY=${TSD_PYTHON:-python3.11}
CACHE=${TSD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tsd-mmdet}
CONSTRAINTS=$ROOT/requirements/constraints.txt
MMCV_VERSION=2.1.0
MMCV_URL=https://files.pythonhosted.org/packages/a7/19/f97f0fd4d432113a232e75f965335be6b7bb6557ae9faf8051e9a012cadd/mmcv-2.1.0.tar.gz
MMCV_SHA256=d387bcab66b467479b6660310e23746cfc79c6e57acf04094680adb499a5cd3f
# mmengine 0.10.7 imports pkg_resources (to resolve mmdet:: configs) and so does mmcv's setup.py;
# our stack is verified with setuptools < 70, while torch 2.14 declares setuptools >= 77 (it uses it
# only to build extensions, which works with 69). So setuptools is pinned after the rest, without deps.
SETUPTOOLS=setuptools==69.5.1

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# Everything that decides what is installed goes into the stamp: change any of it and set-up reruns.
stamp_key() {
  cat "$CONSTRAINTS" requirements/base.txt Makefile setup.py tools/setup_env.sh csrc/* 2>/dev/null | sha256sum | cut -c1-16
}
STAMP=$VENV/.tsd-setup-stamp
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(stamp_key)" ] && "$VENV/bin/python" -c 'import tsd_mmdet' 2>/dev/null; then
  say "environment up to date ($VENV)"
  exit 0
fi

# ---- checks that fail early with something to do -------------------------------------------
command -v "$PY" >/dev/null || die "$PY not found: install Python 3.11 (or set TSD_PYTHON to one)"
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null \
  || die "$PY is not Python 3.11; set TSD_PYTHON to a Python 3.11 interpreter"
command -v g++ >/dev/null || die "no C++ compiler (g++): install build-essential (Debian: apt-get install g++)"
"$PY" -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
  || die "Python headers missing: install python3.11-dev"
avail_kb=$(df -Pk "$ROOT" | awk 'NR==2 {print $4}')
[ "${avail_kb:-0}" -gt $((8 * 1024 * 1024)) ] || die "less than 8 GB free on $(df -P "$ROOT" | awk 'NR==2 {print $6}'): torch alone takes 5.5 GB; free some disk"

# ---- venv and pinned packages ------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  "$PY" -m venv "$VENV" || die "could not create a venv: install python3.11-venv"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
say "installing pinned packages (torch takes about a minute)"
"${PIP[@]}" install -q -c "$CONSTRAINTS" -r requirements/base.txt \
  || die "pip install failed (network? disk?); see the messages above"
"${PIP[@]}" install -q --no-deps "$SETUPTOOLS" || die "could not install $SETUPTOOLS"

# ---- mmcv 2.1.0 with ops, from source, wheel cached --------------------------------------------
TORCH_V=$("$VENV/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])')
PY_TAG=$("$VENV/bin/python" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
WHEEL_DIR=$CACHE/wheels/mmcv-$MMCV_VERSION-torch$TORCH_V-$PY_TAG
have_mmcv() { "$VENV/bin/python" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '$MMCV_VERSION'" 2>/dev/null; }
if ! have_mmcv; then
  if ! ls "$WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1; then
    say "building mmcv $MMCV_VERSION with ops for torch $TORCH_V (about 10 minutes on 2 cores, once)"
    BUILD=$(mktemp -d)
    trap 'rm -rf "$BUILD"' EXIT
    curl -fsSL --retry 3 -o "$BUILD/mmcv.tar.gz" "$MMCV_URL" || die "could not download $MMCV_URL"
    echo "$MMCV_SHA256  $BUILD/mmcv.tar.gz" | sha256sum -c --quiet - || die "mmcv source checksum mismatch"
    tar xzf "$BUILD/mmcv.tar.gz" -C "$BUILD"
    # torch >= 2.10 headers need C++20; mmcv 2.1.0's setup.py forces -std=c++17 for torch > 1.12.
    sed -i 's/-std=c++17/-std=c++20/g' "$BUILD/mmcv-$MMCV_VERSION/setup.py"
    mkdir -p "$WHEEL_DIR"
    # No build isolation: mmcv's setup.py imports torch and pkg_resources (setuptools<70, pinned).
    (cd "$BUILD/mmcv-$MMCV_VERSION" && MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
      "${PIP[@]}" wheel -q --no-build-isolation --no-deps -w "$WHEEL_DIR.tmp" .) \
      || { rm -rf "$WHEEL_DIR.tmp"; die "mmcv build failed; see the compiler messages above"; }
    mv "$WHEEL_DIR.tmp"/mmcv-*.whl "$WHEEL_DIR"/ && rm -rf "$WHEEL_DIR.tmp"
  fi
  say "installing mmcv from $WHEEL_DIR"
  "${PIP[@]}" install -q -c "$CONSTRAINTS" "$WHEEL_DIR"/mmcv-*.whl || die "mmcv install failed"
  have_mmcv || die "mmcv installed but 'import mmcv.ops' fails"
fi

# ---- this package, compiling csrc/ -------------------------------------------------------------
say "installing tsd_mmdet (editable, compiling csrc/)"
"${PIP[@]}" install -q --no-build-isolation --no-deps -e . || die "building tsd_mmdet's extension failed"
"$VENV/bin/python" -c 'import tsd_mmdet.ops as o; assert o.has_extension(), "extension not loaded"' \
  || die "tsd_mmdet installed but its compiled op does not load"
stamp_key > "$STAMP"
say "done: $VENV"
