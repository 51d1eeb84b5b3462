# Switchyard entry points. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Docker Compose v2 (`docker compose`) when the plugin is there, else v1 (`docker-compose`, Debian 12).
COMPOSE ?= $(shell if docker compose version >/dev/null 2>&1; then echo "docker compose"; else echo docker-compose; fi)

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

# `make up` knobs: media workers to run, seconds to wait for health, services to start (empty: all).
WORKERS ?= 1
WAIT ?= 300
SERVICES ?=
WITH_MONITORING := COMPOSE_PROFILES=monitoring

up: ## deploy the whole stack with docker compose: writes .env if missing, builds, starts, waits for health
	deploy/make-env .env
	deploy/check-env .env
	deploy/tls-cert .env
	deploy/freeswitch-image .env
	$(COMPOSE) build
	$(WITH_MONITORING) $(COMPOSE) up -d --scale worker=$(WORKERS) $(SERVICES)
	$(WITH_MONITORING) deploy/wait-healthy $(WAIT) $(COMPOSE)
	$(WITH_MONITORING) $(COMPOSE) ps

down: ## stop and remove the stack's containers (volumes are kept)
	$(WITH_MONITORING) $(COMPOSE) down

logs: ## follow the stack's logs
	$(WITH_MONITORING) $(COMPOSE) logs -f --tail=100

ps: ## the stack's services and their health
	$(WITH_MONITORING) $(COMPOSE) ps

run: $(STAMP) ## run the controller from the venv against the nodes in SWITCHYARD_CONFIG (no docker)
	$(BIN)/switchyard run

render: $(STAMP) ## render freeswitch/conf and janus/conf (the templates) into build/ from SWITCHYARD_CONFIG
	$(BIN)/switchyard render --out build

check: $(STAMP) ## lint, format check and strict typing
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: check ## run checks and the unit + integration tests (emulated FreeSWITCH)
	$(BIN)/pytest -q

test-compose: $(STAMP) ## build the images and smoke-test the compose stack (root, docker; real FreeSWITCH from ../shared)
	.ci/compose-tier

test-live: $(STAMP) ## live twins on a real FreeSWITCH: ../shared/freeswitch's (root), or SWITCHYARD_LIVE_ESL / _API
	$(BIN)/python -m tests.live.rig

bench: $(STAMP) ## run the benchmarks and print their figures
	$(BIN)/python -m bench.esl_events
	$(BIN)/python -m bench.worker_streams
	$(BIN)/python -m bench.call_setup
	$(BIN)/python -m bench.voice_turn
	$(BIN)/python -m bench.janus_register

soak: $(STAMP) ## 10 minutes of 200 concurrent emulated calls with churn: controller RSS and tasks flat, no lost CDR
	$(BIN)/python -m bench.soak

bench-smoke: $(STAMP) ## run each bench for a few seconds: figures plausible and non-zero, a broken bench must fail
	$(BIN)/python -m bench.smoke

fmt: $(STAMP) ## format the code
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

.PHONY: help venv up down logs ps run render check test test-compose test-live bench soak bench-smoke fmt
