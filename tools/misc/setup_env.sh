#!/usr/bin/env bash
# Sets up .venv for tsd-mmdet on a fresh machine: pinned torch/mmengine/mmdet, mmcv 2.1.0 built from
# its source release (wheel cached by torch and Python version), then this package editable.
# Re-running on a machine that has it checks a stamp and returns in seconds.
# Everything comes through pip by name (mmcv's source release too, verified by its sha256), so the
# user's pip configuration (index, mirror, proxy, certificates) applies. Python 3.10-3.12: the first
# of python3.11, python3.12, python3.10 found, or TSD_PYTHON. `--check` only says which interpreter
# and constraint set it would use, and how much disk it needs where, and exits.
set -euo pipefail
CHECK_ONLY=0
[ "${1:-}" = "--check" ] && CHECK_ONLY=1

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
VENV=${TSD_VENV:-$ROOT/.venv}
# pyenv's shim answers for every installed version but runs only the selected ones: a pythonX.Y it
# refuses is taken from pyenv's versions directly.
via_pyenv() {
  case $1 in python3.[0-9]*) ;; *) return 1 ;; esac
  local root found
  root=$(pyenv root 2>/dev/null) || return 1
  found=$(ls -d "$root"/versions/"${1#python}".*/bin/"$1" 2>/dev/null | sort -V | tail -1)
  [ -n "$found" ] && "$found" -c '' >/dev/null 2>&1 && echo "$found"
}
if [ -n "${TSD_PYTHON:-}" ]; then
  PY=$TSD_PYTHON
  if ! "$PY" -c '' >/dev/null 2>&1 && alt=$(via_pyenv "$PY"); then PY=$alt; fi
else
  PY=python3.11
  for candidate in python3.11 python3.12 python3.10; do
    if command -v "$candidate" >/dev/null && "$candidate" -c '' 2>/dev/null; then PY=$candidate; break; fi
    if alt=$(via_pyenv "$candidate"); then PY=$alt; break; fi
  done
fi
CACHE=${TSD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tsd-mmdet}
MMCV_VERSION=2.1.0
# sha256 of mmcv-2.1.0.tar.gz, the source release on the package index: pip refuses any other file.
MMCV_SHA256=d387bcab66b467479b6660310e23746cfc79c6e57acf04094680adb499a5cd3f
# mmengine 0.10.7 imports pkg_resources (to resolve mmdet:: configs) and so does mmcv's setup.py;
# our stack is verified with setuptools < 70, while torch 2.14 declares setuptools >= 77 (it uses it
# only to build extensions, which works with 69). So setuptools is pinned after the rest, without deps.
SETUPTOOLS=setuptools==69.5.1

say() { printf '[setup] %s\n' "$*"; }
# One line for why `pip install` failed, from its messages (file $1): the real cause where pip says
# it, not a guess.
pip_failure() {
  local log=$1 refused
  refused=$(grep -o "Package '[^']*' requires a different Python: [^']*'[^']*'" "$log" | head -1)
  if [ -n "$refused" ]; then
    echo "pip refuses a pin of ${CONSTRAINTS#"$ROOT"/} on this Python: $refused." \
      "The file is not meant for $PY (Python $(( PY_MINOR / 100 )).$(( PY_MINOR % 100 ))):" \
      "'bash tools/misc/constraints.sh check' names every such pin, 'constraints.sh resolve $PY' remakes the file"
  elif grep -q 'No space left on device' "$log"; then
    echo "pip ran out of disk: free some, or set TSD_VENV / TMPDIR to a disk with room"
  elif grep -qiE 'Could not find a version that satisfies|No matching distribution' "$log" \
       && ! grep -qiE 'NewConnectionError|Temporary failure in name resolution|ConnectTimeout|ProxyError|SSLError' "$log"; then
    echo "pip finds no release of a pin for Python $(( PY_MINOR / 100 )).$(( PY_MINOR % 100 )) on this platform in your index:" \
      "$(grep -m1 -oE 'No matching distribution found for [^ ]+' "$log" \
         || grep -m1 -oE 'Could not find a version that satisfies the requirement [^ ]+' "$log")"
  elif grep -qiE 'NewConnectionError|Temporary failure in name resolution|ConnectTimeout|ReadTimeout|ProxyError|SSLError|Connection (refused|reset)' "$log"; then
    echo "pip could not reach the package index (network, proxy or certificates; pip's own settings apply); see the messages above"
  else
    echo "pip install failed; see the messages above"
  fi
}
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

command -v "$PY" >/dev/null || die "$PY not found: install Python 3.10, 3.11 or 3.12 (or set TSD_PYTHON to one)"
PY_MINOR=$("$PY" -c 'import sys; print(sys.version_info[0] * 100 + sys.version_info[1])' 2>/dev/null) \
  || die "$PY does not run; set TSD_PYTHON to a Python 3.10-3.12 interpreter"
case "$PY_MINOR" in
  310) CONSTRAINTS=$ROOT/requirements/constraints-py310.txt ;;  # numpy, scipy, ... for 3.10
  311|312) CONSTRAINTS=$ROOT/requirements/constraints.txt ;;
  *) die "$PY is Python $(( PY_MINOR / 100 )).$(( PY_MINOR % 100 )); tsd-mmdet's stack supports 3.10-3.12: set TSD_PYTHON to one" ;;
esac

# ---- disk: what a run writes, measured on a fresh set-up here (2026-11-28, torch 2.14.1, Python 3.11,
# with TMPDIR and TSD_CACHE empty), plus a margin. The new venv grew to 6.0 GB (torch 1.2 GB, its CUDA
# libraries 3.2 GB, triton 0.9 GB); building mmcv peaked at 0.4 GB in TMPDIR. A venv that has torch
# gets only small packages. onnx, onnxscript, onnxruntime and their dependencies (issue 24) add
# 0.12 GB to either (measured in the installed venv). Not counted: pip's download cache
# (~/.cache/pip), which holds the wheels again where pip downloads them rather than taking them from
# a local directory.
VENV_MB=6600
BUILD_MB=600
SMALL_MB=420
TORCH_PIN=$(sed -n 's/^torch==//p' "$CONSTRAINTS")
PLANNED_TAG=cp$(( PY_MINOR / 100 ))$(( PY_MINOR % 100 ))
gb() { awk -v mb="$1" 'BEGIN { printf "%.1f", mb / 1024 }'; }
existing_dir() { local d=$1; while [ ! -d "$d" ]; do d=$(dirname "$d"); done; echo "$d"; }
mount_of() { df -P "$1" | awk 'NR==2 {print $6}'; }
free_mb() { df -Pm "$1" | awk 'NR==2 {print $4}'; }
# One line per filesystem written to: MOUNT NEED_MB FREE_MB WHAT.
disk_needs() {
  local has venv_need=$VENV_MB build_need=0 venv_dir tmp_dir venv_what="a new venv with torch and its CUDA libraries"
  has=$("$VENV/bin/python" -c 'import importlib.util as u; print(*(int(u.find_spec(m) is not None) for m in ("torch", "mmcv")))' 2>/dev/null) || has="0 0"
  if [ "${has% *}" = 1 ]; then venv_need=$SMALL_MB; venv_what="packages into a venv that has torch"; fi
  if [ "${has#* }" != 1 ] && ! ls "$CACHE/wheels/mmcv-$MMCV_VERSION-torch$TORCH_PIN-$PLANNED_TAG"/mmcv-*.whl >/dev/null 2>&1; then
    build_need=$BUILD_MB
  fi
  venv_dir=$(existing_dir "$VENV"); tmp_dir=$(existing_dir "${TMPDIR:-/tmp}")
  if [ "$build_need" = 0 ]; then
    echo "$(mount_of "$venv_dir") $venv_need $(free_mb "$venv_dir") $venv_what"
  elif [ "$(mount_of "$venv_dir")" = "$(mount_of "$tmp_dir")" ]; then
    echo "$(mount_of "$venv_dir") $(( venv_need + build_need )) $(free_mb "$venv_dir") $venv_what $(gb "$venv_need") GB, building mmcv $(gb "$build_need") GB"
  else
    echo "$(mount_of "$venv_dir") $venv_need $(free_mb "$venv_dir") $venv_what"
    echo "$(mount_of "$tmp_dir") $build_need $(free_mb "$tmp_dir") building mmcv in TMPDIR"
  fi
}

if [ "$CHECK_ONLY" = 1 ]; then
  say "python: $PY ($(( PY_MINOR / 100 )).$(( PY_MINOR % 100 ))), constraints: ${CONSTRAINTS#"$ROOT"/}, venv: $VENV"
  while read -r mount need free what; do
    say "disk: $mount needs $(gb "$need") GB ($what), has $(gb "$free") GB free$([ "$free" -ge "$need" ] || echo ': too little')"
  done < <(disk_needs)
  exit 0
fi

# Everything that decides what is installed goes into the stamp: change any of it and set-up reruns.
stamp_key() {
  { echo "$PY_MINOR"; cat "$CONSTRAINTS" requirements/base.txt Makefile setup.py tools/misc/setup_env.sh csrc/*; } 2>/dev/null | sha256sum | cut -c1-16
}
STAMP=$VENV/.tsd-setup-stamp
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(stamp_key)" ] && "$VENV/bin/python" -c 'import tsd_mmdet' 2>/dev/null; then
  say "environment up to date ($VENV)"
  exit 0
fi

# ---- checks that fail early with something to do -------------------------------------------
command -v g++ >/dev/null || die "no C++ compiler (g++): install build-essential (Debian: apt-get install g++)"
"$PY" -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
  || die "Python headers missing: install the -dev package of $PY (e.g. python3.12-dev)"
while read -r mount need free what; do
  [ "$free" -ge "$need" ] || die "$(gb "$free") GB free on $mount; this set-up writes about $(gb "$need") GB there ($what): free some disk, or set TSD_VENV (the environment) or TMPDIR (the mmcv build) to a disk with room"
done < <(disk_needs)

# ---- venv and pinned packages ------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  "$PY" -m venv "$VENV" || die "could not create a venv with $PY: install its venv package (Debian: python3-venv)"
fi
VENV_MINOR=$("$VENV/bin/python" -c 'import sys; print(sys.version_info[0] * 100 + sys.version_info[1])')
[ "$VENV_MINOR" = "$PY_MINOR" ] \
  || die "$VENV was made with another Python ($VENV_MINOR, not $PY_MINOR): remove it or set TSD_VENV"

PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
say "installing pinned packages (torch takes about a minute)"
PIP_LOG=$(mktemp)
if ! "${PIP[@]}" install -q -c "$CONSTRAINTS" -r requirements/base.txt 2>&1 | tee "$PIP_LOG"; then
  die "$(pip_failure "$PIP_LOG")"
fi
rm -f "$PIP_LOG"
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
    # The source release through pip (the user's index, mirror, proxy), hash-checked by pip itself.
    # pip prepares its metadata, which imports torch: hence no build isolation.
    echo "mmcv==$MMCV_VERSION --hash=sha256:$MMCV_SHA256" > "$BUILD/mmcv-source.txt"
    "${PIP[@]}" download -q --no-deps --no-binary mmcv --no-build-isolation --require-hashes \
      -r "$BUILD/mmcv-source.txt" -d "$BUILD" \
      || die "could not get mmcv $MMCV_VERSION's source release through pip (index? network? hash?)"
    tar xzf "$BUILD/mmcv-$MMCV_VERSION.tar.gz" -C "$BUILD"
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
