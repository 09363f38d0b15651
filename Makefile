# Every target creates .venv when it is missing and installs what it needs (pinned by constraints.txt).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP_INSTALL := $(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt

.PHONY: install install-dev demo test test-notebooks test-no-data test-full bench gpu-checks lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-runtime: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP_INSTALL) -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP_INSTALL) -e '.[dev]'
	# The authors' ECE package, only for the parity test (it pins torch~=1.9, hence --no-deps).
	$(PIP_INSTALL) --no-deps ece-loss==1.0.0
	touch $@ $(VENV)/.installed-runtime

install: $(VENV)/.installed-runtime
install-dev: $(VENV)/.installed-dev

# The main job: loss x sparsity on the embedded synthetic tiles (CPU), segmentation then detection, then
# the results table.
demo: $(VENV)/.installed-runtime
	rm -rf outputs/demo
	$(BIN)/ece-train -m experiment=demo
	$(BIN)/ece-train -m experiment=demo_detection
	$(BIN)/ece-report outputs/demo

# The tests read the real datasets from $ECE_DATASETS, by default ../shared/datasets beside the clone; tests that
# need a dataset that is not there skip, saying so.
test test-full test-notebooks test-no-data: export ECE_DATASETS ?= $(abspath ../shared/datasets)

# Fast tests (the `slow` marker is excluded by pyproject's addopts), then the notebooks.
test: $(VENV)/.installed-dev
	$(BIN)/pytest
	$(MAKE) --no-print-directory test-notebooks

# The notebooks, executed with nbmake on a tiny sweep that notebooks/conftest.py trains first (about a minute).
test-notebooks: $(VENV)/.installed-dev
	$(BIN)/pytest --nbmake notebooks -p no:cacheprovider

# The fast tests with an empty datasets folder, as on a machine without the real data: they must pass or skip.
test-no-data: $(VENV)/.installed-dev
	ECE_DATASETS="$$(mktemp -d)" $(BIN)/pytest -p no:cacheprovider

# Every test, the slow ones included.
test-full: $(VENV)/.installed-dev
	$(BIN)/pytest -m "slow or not slow"
	$(MAKE) --no-print-directory test-notebooks

# The CPU benchmarks (ratios measured in one process; about 10 minutes on 2 cores).
bench: $(VENV)/.installed-runtime
	$(BIN)/ece-bench loss
	$(BIN)/ece-bench metrics
	$(BIN)/ece-bench data
	$(BIN)/ece-bench train

# Every GPU check of the speed and sweep work in one go, on a machine with a CUDA GPU (see the script).
gpu-checks: $(VENV)/.installed-runtime
	bash experiments/gpu_checks.sh

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check ece_lightning tests

clean:
	rm -rf outputs .pytest_cache .ruff_cache
