# Two commands: `make run` starts the whole service on its embedded default; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: run test lint format docs bench bench-classify classifier-model migrate seed clean

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PIP) install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

run: $(VENV)/.runtime  ## API + worker + migrations (+ embedded broker unless KAFKA_BOOTSTRAP_SERVERS is set)
	$(PY) -m service up

test: $(VENV)/.dev  ## the whole suite, against real PostgreSQL (TEST_DATABASE_URL) and a Tansu broker
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(VENV)/.dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

docs: $(VENV)/.dev  ## the documentation site (MkDocs, offline) into site/; --strict fails on a broken link
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

bench: $(VENV)/.dev  ## load benchmark against a service it starts (see bench/README.md)
	$(PY) -m bench.load $(BENCH_ARGS)

bench-classify: $(VENV)/.dev
	$(PY) bench/classify.py

classifier-model: $(VENV)/.dev  ## retrain and export resources/classifier/model.gz after editing labelled.yaml
	$(PY) -m service.pipeline.classify_train

migrate: $(VENV)/.runtime
	$(PY) -m service migrate

seed: $(VENV)/.runtime
	$(PY) -m service seed

clean:
	rm -rf $(VENV) data site .pytest_cache .mypy_cache .ruff_cache
