# The two commands of the README:
#   make run    set up .venv and build the example project (kto-build run)
#   make test   set up .venv and the test services, then run the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup run test services lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -e ".[local,dev,docs,ray]"
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/kto-build run

services:
	bash scripts/install-test-services.sh

test: setup services
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf target .pytest_cache
