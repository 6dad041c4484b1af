# Every target bootstraps .venv itself, so a fresh clone needs only `make demo` / `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: venv bytecode demo test soak lint bench format clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Bytecode for our own sources, written once per run: with PYTHONDONTWRITEBYTECODE set (as on
# this machine and in CI) nothing else writes it, and every `burner` and relay process the
# tests start would compile the package again: 0.25 s of CPU per `burner contacts` instead
# of 0.19 s, about a tenth of `make test`. Stale files are only ever ignored by Python.
bytecode: $(STAMP)
	$(BIN)/python -m compileall -q src tests bench

demo: bytecode
	$(BIN)/burner demo

# In parallel (pytest-xdist): three workers per CPU, since the integration and e2e tests spend
# much of their time waiting on relay and burner processes (with two per CPU, 2 cores stood
# a third idle: 142 s against 128 s for the whole run). Each worker has its own
# session fixtures (the e2e shared relay), tmp paths and relay ports; --dist loadgroup keeps
# the tests of one @pytest.mark.xdist_group(name) on one worker.
TEST_WORKERS ?= $(shell echo $$((3 * $$(nproc))))
test: bytecode
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadgroup

# The long randomized crash runs (hundreds of kill -9 cycles); minutes, not seconds.
soak: bytecode
	$(BIN)/pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: bytecode
	$(BIN)/python -m bench.run

format: $(STAMP)
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
