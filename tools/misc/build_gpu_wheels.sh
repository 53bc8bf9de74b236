#!/usr/bin/env bash
# Builds, on this (GPU-less) machine, the wheels the GPU machine lacks for running mmdet detectors:
# mmcv 2.1.0 with its CUDA ops for sm_90 (H100 / H200), built against that machine's torch
# (2.11.0+cu130, Python 3.12), plus mmengine, mmdet and their pure-Python / manylinux dependencies.
#
#   bash tools/misc/build_gpu_wheels.sh [OUT_DIR]     (default .gpu-wheels, ignored by git)
#
# Everything comes through pip by name (mmcv's source release hash-checked, as in setup_env.sh), so
# the user's pip configuration applies. The build venv (Python 3.12 + torch 2.11.0, ~5 GB) and the
# mmcv wheel are cached under TSD_CACHE (default ~/.cache/tsd-mmdet/gpu-build): a second run checks a
# stamp and returns in seconds. The mmcv CUDA build takes long on 2 cores (nvcc, one arch): run it in
# the background. OUT_DIR must stay well under the device tool's 64 MiB carry limit: its size is
# printed, and a folder over GPU_WHEELS_MAX_MB (default 48) fails the run.
#
# Settings: GPU_PYTHON (default python3.12), GPU_TORCH (default 2.11.0, whose torch.version.cuda
# must be GPU_CUDA, default 13.0), GPU_ARCH (default 9.0), CUDA_HOME (default /usr/local/cuda),
# MAX_JOBS (default nproc).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
OUT=${1:-$ROOT/.gpu-wheels}
GPU_PYTHON=${GPU_PYTHON:-python3.12}
GPU_TORCH=${GPU_TORCH:-2.11.0}
GPU_CUDA=${GPU_CUDA:-13.0}
GPU_ARCH=${GPU_ARCH:-9.0}
CACHE=${TSD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tsd-mmdet}/gpu-build
MAX_MB=${GPU_WHEELS_MAX_MB:-48}
MMCV_VERSION=2.1.0
MMCV_SHA256=d387bcab66b467479b6660310e23746cfc79c6e57acf04094680adb499a5cd3f  # as setup_env.sh
SETUPTOOLS=setuptools==69.5.1  # pkg_resources, for mmengine's mmdet:: configs (see setup_env.sh)
# What mmdet's detectors import that the GPU machine's Python lacks (it has torch, torchvision,
# numpy, scipy, matplotlib, opencv, pillow, tqdm, rich, pytest): pinned as requirements/constraints.txt.
PURE=(mmengine mmdet pycocotools terminaltables shapely addict yapf termcolor platformdirs PyYAML six
      packaging)
start=$SECONDS
say() { echo "[gpu-wheels $(( SECONDS - start ))s] $*"; }
die() { echo "[gpu-wheels] ERROR: $*" >&2; exit 1; }

TAG=mmcv-$MMCV_VERSION-torch$GPU_TORCH-cu${GPU_CUDA/./}-sm${GPU_ARCH/./}-cp312
STAMP_KEY=$(printf '%s\n' "$TAG" "${PURE[@]}" "$SETUPTOOLS" | cat - requirements/constraints.txt | sha256sum | cut -c1-16)
if [ -f "$OUT/.stamp" ] && [ "$(cat "$OUT/.stamp")" = "$STAMP_KEY" ]; then
  say "up to date: $OUT ($(du -sm "$OUT" | cut -f1) MiB)"
  exit 0
fi

if ! "$GPU_PYTHON" -c '' 2>/dev/null && [ "$GPU_PYTHON" = python3.12 ]; then
  # pyenv's shim refuses a version that is installed but not selected: take it directly
  GPU_PYTHON=$(ls -d "$(pyenv root 2>/dev/null || echo /nonexistent)"/versions/3.12.*/bin/python3.12 2>/dev/null | tail -1)
fi
[ -n "$GPU_PYTHON" ] && command -v "$GPU_PYTHON" >/dev/null && "$GPU_PYTHON" -c '' 2>/dev/null \
  || die "$GPU_PYTHON not found: the GPU machine runs Python 3.12; set GPU_PYTHON to a 3.12 interpreter"
[ "$("$GPU_PYTHON" -c 'import sys; print(sys.version_info[:2] == (3, 12))')" = True ] \
  || die "$GPU_PYTHON is not Python 3.12 (the GPU machine's)"
export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
[ -x "$CUDA_HOME/bin/nvcc" ] || die "no nvcc under $CUDA_HOME: set CUDA_HOME"

# ---- 1. build venv: Python 3.12 with the GPU machine's torch -------------------------------------
VENV=$CACHE/venv-py312-torch$GPU_TORCH
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
if ! "$VENV/bin/python" -c "import torch; assert torch.__version__.split('+')[0] == '$GPU_TORCH'" 2>/dev/null; then
  say "build venv $VENV (torch $GPU_TORCH with its CUDA libraries, about 5 GB)"
  "$GPU_PYTHON" -m venv "$VENV"
  "${PIP[@]}" install -q "torch==$GPU_TORCH" numpy ninja wheel packaging addict yapf \
    || die "pip could not install torch $GPU_TORCH for Python 3.12 (network? disk?)"
  "${PIP[@]}" install -q --no-deps "$SETUPTOOLS"
fi
TORCH_CUDA=$("$VENV/bin/python" -c 'import torch; print(torch.version.cuda)')
[ "$TORCH_CUDA" = "$GPU_CUDA" ] \
  || die "torch $GPU_TORCH from the index is built for CUDA $TORCH_CUDA, the GPU machine's for $GPU_CUDA"
say "torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)') (CUDA $TORCH_CUDA), nvcc $("$CUDA_HOME/bin/nvcc" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')"

# ---- 2. mmcv with CUDA ops for one arch -----------------------------------------------------------
MMCV_DIR=$CACHE/$TAG
if ! ls "$MMCV_DIR"/mmcv-*.whl >/dev/null 2>&1; then
  SRC=$CACHE/src
  rm -rf "$SRC" && mkdir -p "$SRC"
  echo "mmcv==$MMCV_VERSION --hash=sha256:$MMCV_SHA256" > "$SRC/mmcv-source.txt"
  "${PIP[@]}" download -q --no-deps --no-binary mmcv --no-build-isolation --require-hashes \
    -r "$SRC/mmcv-source.txt" -d "$SRC" || die "could not get mmcv $MMCV_VERSION's source release"
  tar xzf "$SRC/mmcv-$MMCV_VERSION.tar.gz" -C "$SRC"
  # torch >= 2.10 headers need C++20 (host compiler and nvcc alike); mmcv 2.1.0 asks for C++17.
  sed -i 's/-std=c++17/-std=c++20/g' "$SRC/mmcv-$MMCV_VERSION/setup.py"
  say "building mmcv $MMCV_VERSION with CUDA ops for sm_${GPU_ARCH/./} (long: nvcc on $(nproc) cores); log $CACHE/mmcv-build.log"
  # One SASS arch, no PTX, keeps the .so small. MMCV_WITH_OPS + FORCE_CUDA builds _ext with the
  # CUDA kernels although this machine has no GPU. torch's CUDA headers include cuSPARSE's and
  # cuBLAS's, which a compiler-only CUDA lacks: the venv's CUDA wheels (nvidia/cu13) have them.
  NV=$("$VENV/bin/python" - <<'EOF'
import glob, os, sys, sysconfig
dirs = glob.glob(os.path.join(sysconfig.get_paths()['purelib'], 'nvidia', '*', 'include'))
if not any(os.path.isfile(os.path.join(d, 'cusparse.h')) for d in dirs):
    sys.exit(1)
print(':'.join(dirs))
EOF
) || die "no cusparse.h under $VENV's nvidia/*/include: torch's CUDA wheels are missing"
  if ! (cd "$SRC/mmcv-$MMCV_VERSION" && export CPATH=$NV${CPATH:+:$CPATH} \
        && MMCV_WITH_OPS=1 FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="$GPU_ARCH" \
        MAX_JOBS=${MAX_JOBS:-$(nproc)} "${PIP[@]}" wheel -v --no-build-isolation --no-deps \
        -w "$MMCV_DIR.tmp" .) > "$CACHE/mmcv-build.log" 2>&1; then
    grep -E 'error|Error' "$CACHE/mmcv-build.log" | head -30 >&2
    rm -rf "$MMCV_DIR.tmp"
    die "mmcv CUDA build failed; see $CACHE/mmcv-build.log"
  fi
  mkdir -p "$MMCV_DIR" && mv "$MMCV_DIR.tmp"/mmcv-*.whl "$MMCV_DIR"/ && rm -rf "$MMCV_DIR.tmp"
fi
# The wheel must hold CUDA kernels for the arch, not only the CPU ones: a .nv_fatbin section whose
# cubins name the arch (this machine's CUDA has no cuobjdump).
"$VENV/bin/python" - "$MMCV_DIR" "$GPU_ARCH" <<'EOF' || die "the mmcv wheel has no sm_${GPU_ARCH/./} kernels"
import glob, subprocess, sys, tempfile, zipfile
wheel = glob.glob(sys.argv[1] + '/mmcv-*.whl')[0]
arch = 'sm_' + sys.argv[2].replace('.', '')
with zipfile.ZipFile(wheel) as z, tempfile.TemporaryDirectory() as tmp:
    ext = [n for n in z.namelist() if n.startswith('mmcv/_ext') and n.endswith('.so')][0]
    path = z.extract(ext, tmp)
    sections = subprocess.run(['readelf', '-SW', path], capture_output=True, text=True).stdout
    fatbin = [line for line in sections.splitlines() if '.nv_fatbin' in line]
    with open(path, 'rb') as f:
        count = f.read().count(arch.encode())
    print(f'{wheel.rsplit("/", 1)[1]}: {ext}, {len(fatbin)} .nv_fatbin section(s), '
          f'{count} mentions of {arch}')
    sys.exit(not (fatbin and count))
EOF

# ---- 3. the rest, as wheels for Python 3.12 / manylinux x86_64 -----------------------------------
rm -rf "$OUT.tmp" && mkdir -p "$OUT.tmp"
cp "$MMCV_DIR"/mmcv-*.whl "$OUT.tmp"/
PINS=()
for name in "${PURE[@]}"; do
  pin=$(grep -i "^$name==" requirements/constraints.txt || true)
  PINS+=("${pin:-$name}")
done
say "downloading ${#PINS[@]} wheels + $SETUPTOOLS for cp312 manylinux x86_64"
"${PIP[@]}" download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
  -d "$OUT.tmp" "${PINS[@]}" "$SETUPTOOLS" || die "pip download of the pure wheels failed"
rm -rf "$OUT" && mv "$OUT.tmp" "$OUT"
echo "$STAMP_KEY" > "$OUT/.stamp"
ls -1 "$OUT"/*.whl | sed 's|.*/|  |'
SIZE_MB=$(du -sm "$OUT" | cut -f1)
say "done: $OUT, $SIZE_MB MiB ($(du -sh "$OUT" | cut -f1)) of the device tool's 64 MiB carry limit"
[ "$SIZE_MB" -le "$MAX_MB" ] || die "$OUT is $SIZE_MB MiB, over $MAX_MB: it would not travel with room to spare"
