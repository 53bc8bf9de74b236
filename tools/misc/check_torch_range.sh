#!/usr/bin/env bash
# Builds tsd_mmdet's op against another torch and runs tests/ops there: the check behind the README's
# "tested with" table (the op layer needs torch alone). Not an equation of the paper.
#
#   bash tools/misc/check_torch_range.sh 2.1.2 0.16.2            # torch, torchvision
#   TSD_PYTHON=python3.10 bash tools/misc/check_torch_range.sh 2.1.2 0.16.2
#
# The venv goes to $TSD_CACHE/venv-torch<version>-<python> (kept for re-runs); packages come through
# pip by name, so your pip configuration applies. The source tree is copied to a temporary folder,
# so the build there never replaces this checkout's compiled op.
set -euo pipefail
TORCH=${1:?usage: check_torch_range.sh TORCH_VERSION TORCHVISION_VERSION}
VISION=${2:?usage: check_torch_range.sh TORCH_VERSION TORCHVISION_VERSION}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=${TSD_PYTHON:-python3.11}
CACHE=${TSD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tsd-mmdet}
VENV=$CACHE/venv-torch$TORCH-$("$PY" -c 'import sys; print(f"py{sys.version_info[0]}{sys.version_info[1]}")')
say() { printf '[torch-range] %s\n' "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  "$PY" -m venv "$VENV"
fi
# numpy < 2 for torch < 2.3, which was built against numpy 1.x.
NUMPY=$("$VENV/bin/python" - "$TORCH" <<'PYEOF'
import sys
major, minor = (int(v) for v in sys.argv[1].split('.')[:2])
print('numpy<2' if (major, minor) < (2, 3) else 'numpy')
PYEOF
)
say "installing torch==$TORCH torchvision==$VISION ($NUMPY) into $VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "torch==$TORCH" \
  "torchvision==$VISION" "$NUMPY" pytest pytest-timeout hypothesis ninja 'setuptools<70' wheel

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cp -r "$ROOT/csrc" "$ROOT/setup.py" "$ROOT/pyproject.toml" "$ROOT/tsd_mmdet" "$WORK/"
mkdir -p "$WORK/tests" && cp -r "$ROOT/tests/ops" "$WORK/tests/"
rm -f "$WORK"/tsd_mmdet/_C*.so
cd "$WORK"
say "building the op against torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)')"
MAX_JOBS=${MAX_JOBS:-$(nproc)} "$VENV/bin/python" setup.py -q build_ext --inplace 2>&1 | tail -3
"$VENV/bin/python" -c 'import tsd_mmdet.ops as o; assert o.has_extension(), "op not built"'
say "tests/ops"
"$VENV/bin/python" -m pytest tests/ops -q -p no:cacheprovider -o addopts= -W ignore
