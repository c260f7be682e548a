# The two commands in README.md: `make serve` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: serve test install install-test constraints system-deps-runtime system-deps-test voice-model lint typecheck unit bench clean

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip

## Every dependency at the exact version in constraints.txt, the set the suite last passed with.
CONSTRAINTS := -c constraints.txt

install: $(PY) system-deps-runtime
	$(PIP) install -q $(CONSTRAINTS) -e '.[offline-voice]'
	$(PY) -m voice.models --data-dir "$${PATCHBAY_DATA_DIR:-./var}"

install-test: $(PY) system-deps-test
	$(PIP) install -q $(CONSTRAINTS) -e '.[test,offline-voice]'
	$(PY) -m voice.models --data-dir "$${PATCHBAY_DATA_DIR:-./var}"

## Install, migrate and run on the embedded default (SQLite under ./var, offline voice).
serve: install
	$(VENV)/bin/patchbay db upgrade
	exec $(VENV)/bin/patchbay serve

## Install what the tests need and run lint, type checks, the layering contract and the whole suite.
## The suite runs on TEST_WORKERS pytest-xdist workers, a test file per worker at a time (many
## tests wait on subprocesses, browsers and sockets, so more workers than cores pays).
TEST_WORKERS ?= 4
test: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadfile --durations=25

system-deps-runtime:
	bash scripts/system-deps.sh runtime

system-deps-test:
	bash scripts/system-deps.sh test

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck:
	$(VENV)/bin/mypy

unit:
	$(VENV)/bin/pytest -x -q

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

## Renew constraints.txt from the newest releases pyproject.toml allows, in a scratch venv;
## then run `make test` and commit the two together.
constraints:
	rm -rf .venv-constraints build
	python3 -m venv .venv-constraints
	.venv-constraints/bin/python -m pip install -q --upgrade pip
	.venv-constraints/bin/python -m pip install -q '.[test,offline-voice]'
	{ sed -n '/^#/p' constraints.txt; .venv-constraints/bin/python -m pip freeze --exclude patchbay; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf .venv-constraints build
