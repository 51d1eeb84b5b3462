# Switchyard entry points. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -e '.[dev]'
	# The silero-vad wheel carries the VAD's ONNX model; its declared torch dependency is not used.
	$(BIN)/pip install -q --no-deps 'silero-vad==6.2.3'
	touch $(STAMP)

venv: $(STAMP) ## create .venv and install the project with its dev tools

up: $(STAMP) ## run the controller against the FreeSWITCH nodes in $$SWITCHYARD_CONFIG (default switchyard.yaml)
	$(BIN)/switchyard run

check: $(STAMP) ## lint, format check and strict typing
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: check ## run checks and the unit + integration tests (emulated FreeSWITCH)
	$(BIN)/pytest -q

test-live: $(STAMP) ## run the live twins against SWITCHYARD_LIVE_ESL=host:port + SWITCHYARD_LIVE_ESL_PASSWORD
	$(BIN)/pytest -q -m live

bench: $(STAMP) ## run the benchmarks and print their figures
	$(BIN)/python -m bench.esl_events
	$(BIN)/python -m bench.worker_streams
	$(BIN)/python -m bench.call_setup
	$(BIN)/python -m bench.voice_turn

fmt: $(STAMP) ## format the code
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

.PHONY: help venv up check test test-live bench fmt
