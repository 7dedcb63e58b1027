# txnpipe — `make help` lists the targets. CI runs `make test` (see .ci/run).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
# mysql-connector's C extension must load before anything imports OpenSSL (pytest's own
# start-up does): run pytest from a Python that loaded it first.
PYTEST := $(BIN)/python -c 'import _mysql_connector, sys, pytest; sys.exit(pytest.main())'
# `make test` runs the tests in parallel (pytest-xdist): they mostly wait on the broker, so
# more workers than cores pay; tests/parallel.py keeps a module's shared fixture on one worker.
TEST_JOBS ?= 4
PARALLEL := -n $(TEST_JOBS) --dist loadgroup

.DEFAULT_GOAL := help
.PHONY: help venv lint format test test-unit test-integration run bench clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-18s %s\n", $$1, $$2}'

venv: $(VENV)/.installed ## create .venv and install txnpipe with its dev tools

# uv installs what pip would, from PyPI, in seconds (parallel downloads) where pip takes
# minutes; pip alone is the fallback when uv cannot be had.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	{ $(BIN)/pip install --quiet 'uv>=0.5' && \
	  $(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[dev]'; } || \
	  $(BIN)/pip install --quiet -e '.[dev]'
	touch $@

lint: venv ## ruff, mypy (strict on source), import-linter (stages never import each other)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: venv ## apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: venv ## every test: unit, then integration against the real broker, MariaDB and Redis
	$(BIN)/txnpipe services up
	$(PYTEST) -q $(PARALLEL) tests

test-unit: venv ## unit tests only (no services, seconds)
	$(PYTEST) -q tests/unit

test-integration: venv ## integration tests only
	$(BIN)/txnpipe services up
	$(PYTEST) -q $(PARALLEL) tests/integration

run: venv ## the main job: broker if needed, simulator, poller, stream worker, sink, live view
	$(BIN)/txnpipe run

bench: venv ## every benchmark, each prints its figures and the ratio to the raw limit
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean: ## stop the bundled broker and remove the venv
	-$(BIN)/txnpipe services down
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
