# Two commands: `make demo` and `make test`. Both create .venv and install from the lock in
# requirements/ (exact versions and hashes) with plain pip; `make lock` refreshes the lock.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCK := requirements
# pip's own check of every downloaded file against the hash in the lock
PIP_LOCKED := -m pip install --quiet --require-hashes --no-deps
# what `make test-latest` installs: the newest releases the ranges in pyproject.toml allow
LATEST := .venv-latest
# the tool that writes the lock, itself pinned; lives apart from the project's environments
LOCKER := .venv-lock
UV_VERSION := 0.13.8
COMPILE := $(LOCKER)/bin/uv pip compile --quiet --python-version 3.11 --universal --generate-hashes

# the embeddings extra lives in its own environment and lock: torch from the registry is a CUDA
# build of several GB, so the lock pins the CPU build that lies in $(WHEELS) (pip looks there)
EMB := .venv-embeddings
WHEELS ?= /opt/wheels

.PHONY: demo test test-slow test-latest test-embeddings lint bench lock clean

# the runtime set for the demo; the test set (runtime included) and spark for the tests
$(VENV)/.runtime: $(LOCK)/build.txt $(LOCK)/runtime.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python $(PIP_LOCKED) -r $(LOCK)/build.txt -r $(LOCK)/runtime.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.test: $(VENV)/.runtime $(LOCK)/test.txt $(LOCK)/spark.txt
	$(BIN)/python $(PIP_LOCKED) -r $(LOCK)/test.txt -r $(LOCK)/spark.txt
	touch $@

demo: $(VENV)/.runtime
	$(BIN)/cartlift demo

lint: $(VENV)/.test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -n 2 -q

# slow tests (large data, Spark) run in their own CI step; exit code 5 means none were collected
test-slow: $(VENV)/.test
	$(BIN)/python -m pytest -q -m "slow or spark" || [ $$? -eq 5 ]

# a fresh environment with the newest allowed releases, so an upstream release that breaks
# cartlift is seen at the next landing rather than by a user; not from the lock, on purpose
test-latest:
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST)/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager -e '.[test,spark]'
	$(LATEST)/bin/python -m pip list --format=freeze | grep -iE '^(duckdb|numpy|scipy|pandas|pyarrow|scikit-learn|lightgbm|fastapi|pydantic)=='
	$(LATEST)/bin/python -m pytest -n 2 -q

# refresh the lock after changing a range in pyproject.toml, or to take newer releases;
# then run `make test` and commit requirements/ with the change
lock:
	test -x $(LOCKER)/bin/uv || ($(PYTHON) -m venv $(LOCKER) && $(LOCKER)/bin/python -m pip install --quiet uv==$(UV_VERSION))
	$(COMPILE) $(LOCK)/build.in -o $(LOCK)/build.txt
	$(COMPILE) pyproject.toml -o $(LOCK)/runtime.txt
	$(COMPILE) pyproject.toml --extra test -c $(LOCK)/runtime.txt -o $(LOCK)/test.txt
	$(COMPILE) pyproject.toml --extra spark -c $(LOCK)/runtime.txt -o $(LOCK)/spark.txt
	$(LOCKER)/bin/uv pip compile --quiet --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		--generate-hashes --find-links $(WHEELS) pyproject.toml --extra embeddings \
		-c $(LOCK)/test.txt -c $(LOCK)/torch-cpu.in -o $(LOCK)/embeddings.txt

$(EMB)/.test: $(LOCK)/build.txt $(LOCK)/runtime.txt $(LOCK)/test.txt $(LOCK)/embeddings.txt pyproject.toml
	test -x $(EMB)/bin/python || $(PYTHON) -m venv $(EMB)
	$(EMB)/bin/python $(PIP_LOCKED) -r $(LOCK)/build.txt -r $(LOCK)/runtime.txt
	$(EMB)/bin/python $(PIP_LOCKED) -r $(LOCK)/test.txt
	$(EMB)/bin/python $(PIP_LOCKED) --find-links $(WHEELS) -r $(LOCK)/embeddings.txt
	$(EMB)/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# the tests of the embeddings extra, with the extra installed (in `make test` they skip)
test-embeddings: $(EMB)/.test
	$(EMB)/bin/python -m pytest -q -p no:xdist -m embeddings

bench: $(VENV)/.test
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) $(LATEST) $(EMB) .pytest_cache .mypy_cache .ruff_cache build src/*.egg-info
