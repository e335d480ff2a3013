# The two commands of the README: `make layer` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# lambdakit alone (the main job), then with what the tests and deploys need.
CORE   := $(VENV)/.installed-core
DEV    := $(VENV)/.installed-dev

.PHONY: layer test lint services bench bench-worker clean

# builder/__init__.py holds the version the installed metadata reads.
$(CORE): pyproject.toml builder/__init__.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(DEV): $(CORE)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# Build and validate the psycopg2 layer for python3.12 x86_64, without Docker.
layer: $(CORE)
	$(BIN)/lambdakit build-layer psycopg2 --runtime python3.12 --arch x86_64 --backend uv

# What the tests need that is not a Python package: PostgreSQL binaries, a Docker engine.
services:
	bash scripts/ensure-services.sh

lint: $(DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy builder

test: $(DEV) services lint
	$(BIN)/pytest

bench: $(DEV)
	$(BIN)/python bench/layer_build.py

bench-worker: $(DEV) services
	$(BIN)/python bench/worker_throughput.py

clean:
	rm -rf build .aws-sam
