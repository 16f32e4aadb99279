# `make train`, `make test` and `make docs` each work on a fresh machine: they install into .venv first if needed.
# `make train` installs only what the tool needs; `make test` adds the test tools, `make docs` the site's.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= configs/default.yaml

.PHONY: install install-dev install-docs install-ray train test lint format check-docs check-readme docs docs-build bench clean

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev
install-docs: $(VENV)/.installed-docs

$(VENV)/.installed: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

$(VENV)/.installed-docs: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[docs]"
	touch $@

# Ray, for `mnist sweep --backend ray` (the optional extra; the test tools include it).
install-ray: install
	$(BIN)/python -m pip install --quiet -e ".[ray]"

train: install
	$(BIN)/mnist train --config $(CONFIG) --overwrite

# Two pytest workers (pytest-xdist): a third less wall time on 2 cores, since many tests wait on processes, a browser
# or Ray; the Ray tests share one worker (xdist_group). TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= 2
test: install-dev
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Runs the ```console blocks of README.md and of every docs/ page and compares what they print with the page
# (accuracies within a tolerance, never timings); needs the real MNIST. CHECK_DOCS_ARGS=--fast leaves out the blocks
# that train; CHECK_DOCS_ARGS=README.md checks one page.
check-docs: install
	$(BIN)/python docs/check_readme.py $(CHECK_DOCS_ARGS)

check-readme: install
	$(BIN)/python docs/check_readme.py README.md $(CHECK_DOCS_ARGS)

# The documentation site: `make docs` serves it at http://127.0.0.1:8000/, `make docs-build` writes site/. --clean:
# Zensical caches pages by their Markdown, and the reference pages change with the code, not with their Markdown.
docs: install-docs
	$(BIN)/zensical build --clean
	$(BIN)/zensical serve

docs-build: install-docs
	$(BIN)/zensical build --clean --strict

# The benchmark behind docs/performance.md (~20 min on 2 cores; BENCH_ARGS=--quick for a few minutes while developing,
# BENCH_ARGS="--quick --sections profile,loaded" for some sections). It starts and stops two busy loops itself (loaded).
bench: install
	$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build site *.egg-info
