# tsd-mmdet: every target sets up .venv first (seconds when it is already there).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test test-cuda-build lint clean

setup:
	@bash tools/misc/setup_env.sh

demo: setup  ## the main job: data, training, evaluation, pictures
	$(PY) tools/misc/demo.py

# One pytest-xdist worker per core; TEST_WORKERS=0 runs the suite in one process.
TEST_WORKERS ?= auto
test: setup  ## the test suite (CUDA tests skip without a GPU)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup tests

# CUDA_HOME: torch would guess /usr/local from a /usr/local/bin/nvcc wrapper script.
test-cuda-build: setup  ## compile the CUDA kernels with nvcc (sm_80, sm_90) into build/cuda; no GPU needed
	CUDA_HOME=$${CUDA_HOME:-/usr/local/cuda} FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="8.0;9.0" MAX_JOBS=2 $(PY) setup.py -q build_ext \
		--build-temp build/cuda/tmp --build-lib build/cuda/lib

lint: setup
	$(VENV)/bin/ruff check tsd_mmdet tools tests configs

clean:
	rm -rf build *.egg-info tsd_mmdet/_C*.so
