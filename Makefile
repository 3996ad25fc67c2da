# Every target creates .venv and installs the project when missing, so each works first on a
# fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export QLIB_ASSETS_HOME ?= $(CURDIR)/.qlib_assets

.PHONY: install demo test snapshot test-slow lint format ui mlflow-ui bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/qlib-assets demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -q

# After an intended change to the asset graph: rewrite its snapshot, then review and commit it.
snapshot: $(STAMP)
	QLIB_ASSETS_UPDATE_SNAPSHOT=1 $(BIN)/pytest -q qlib_assets_tests/test_asset_graph.py

test-slow: $(STAMP)
	$(BIN)/pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

ui: $(STAMP)
	DAGSTER_HOME=$$($(BIN)/qlib-assets prepare-instance) $(BIN)/dagster dev -w workspace.yaml

mlflow-ui: $(STAMP)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(QLIB_ASSETS_HOME)/mlflow.db --host 127.0.0.1 --port 5000

bench: $(STAMP)
	for script in benchmarks/*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(QLIB_ASSETS_HOME)
