# matcher: `make run` serves the API and page on http://127.0.0.1:8000, `make test` runs every check.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
HOST ?= 127.0.0.1
WORKERS ?= 2

## help: list the targets
help:
	@grep -E '^## ' $(MAKEFILE_LIST) | sed 's/^## /  /'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

## install: create .venv and install matcher
install: $(VENV)/.installed

## train: fit a new model version on data/ and make it active
train: install
	$(BIN)/matcher train

## run: install, create the database and the default model when missing, serve on http://$(HOST):$(PORT)
run: install
	$(BIN)/matcher db init
	$(BIN)/matcher train --if-none-active
	$(BIN)/matcher serve --host $(HOST) --port $(PORT) --workers $(WORKERS)

## lint: ruff
lint: $(VENV)/.installed-test
	$(BIN)/ruff check matcher tests benchmarks data api.py
	$(BIN)/lint-imports

## browser: Debian's Chromium for the browser tests (installed with apt-get when run as root)
browser:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's chromium for the browser tests"; \
	  (apt-get install -y -q chromium fonts-noto-cjk >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium fonts-noto-cjk >/dev/null 2>&1)) || \
	  echo "could not install chromium: the browser tests will skip (under CI=true they fail)"; \
	else echo "chromium is missing and needs root and apt-get to install: the browser tests will skip"; fi

## test: install what the tests need (Python packages, Chromium), lint, and run the whole suite (on every core)
test: $(VENV)/.installed-test lint browser
	$(BIN)/python -m pytest -q -n auto

$(VENV)/.installed-notebooks: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[notebooks]'
	touch $@

## notebooks: start Jupyter Lab on http://127.0.0.1:8888 in notebooks/ (for analysts)
notebooks: $(VENV)/.installed-notebooks
	cd notebooks && ../$(BIN)/jupyter lab --ip 127.0.0.1 --port 8888 --no-browser

## bench: the latency benchmark (see benchmarks/README.md)
bench: install
	$(BIN)/python benchmarks/latency.py

## data: regenerate the embedded sample libraries (byte-identical for the same seed)
data: install
	$(BIN)/python data/generate.py

## clean: remove the virtual environment and caches
clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

.PHONY: help install train run lint browser test bench data notebooks clean
