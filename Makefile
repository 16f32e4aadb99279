# `make train` and `make test` each work on a fresh machine: they install into .venv first if needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= configs/default.yaml

.PHONY: install install-ray train test lint format check-readme bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

# Ray, for `mnist sweep --backend ray` (the optional extra; `install` already has it through dev).
install-ray: install
	$(BIN)/python -m pip install --quiet -e ".[ray]"

train: install
	$(BIN)/mnist train --config $(CONFIG) --overwrite

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Runs the README's ```console blocks and compares what they print (accuracies, messages, exit codes) with the README;
# needs the real MNIST. CHECK_README_ARGS=--fast leaves out the blocks that train (~1-2 min on 2 cores in all).
check-readme: install
	$(BIN)/python docs/check_readme.py $(CHECK_README_ARGS)

# The benchmark behind README "Performance" (~20 min on 2 cores; BENCH_ARGS=--quick for ~1-2 min while developing).
bench: install
	$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
