# Two commands do all set-up on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV := $(shell scripts/ensure-uv.sh)
PY := .venv/bin/python
PYTEST := $(PY) -m pytest

.PHONY: help sync web browser promtool run test test-unit test-integration test-e2e test-containers test-web lint format contracts up down logs bench bench-quick chaos soak clean

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

sync: ## Install the locked dependencies of every workspace member into .venv
	@$(UV) sync --frozen --all-packages --quiet

web: ## Build the web front end into web/dist when it is out of date (npm ci + Vite)
	@scripts/build-web.sh

browser: ## Install Debian's Chromium for the browser tests when /usr/bin/chromium is missing
	@scripts/ensure-chromium.sh

promtool: ## Fetch Prometheus's promtool into .tools/bin for the alert-rule tests
	@scripts/ensure-promtool.sh

run: sync web ## Start the whole system locally (web app and API on 127.0.0.1:8000)
	$(PY) scripts/run_local.py

test: sync lint web browser promtool ## Lint, build the web app, then run every test (unit … e2e, web)
	$(PYTEST)

test-unit: sync ## The fast loop: pure logic and in-memory fakes only
	$(PYTEST) -m unit

test-integration: sync ## Components against the real RabbitMQ and a MongoDB-protocol server
	$(PYTEST) -m integration

test-e2e: sync ## The whole system as processes, through the gateway
	$(PYTEST) -m e2e

# The fault suite (tests/chaos) starts its own embedded servers and broker node: local mode only.
test-containers: sync ## Integration and e2e suites on MongoDB and RabbitMQ containers (needs Docker)
	@$(PY) -m devkit.containers --pull
	SHOP_TEST_CONTAINERS=1 $(PYTEST) -m "integration or e2e" --ignore=tests/chaos

test-web: sync web browser ## The web front end in Chromium against the running system
	$(PYTEST) -m web

lint: sync ## ruff, mypy (strict on libs/ and every service), AsyncAPI parser, Spectral OWASP on OpenAPI
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy --strict libs/*/src
	$(PY) -m mypy --strict services/*/src
	$(PY) -m mypy scripts bench tools
	tools/lint/check.sh

format: sync ## Apply ruff's fixes and formatting
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

contracts: sync ## Write the JSON Schemas and libs/contracts/asyncapi.yaml
	$(PY) -m contracts.export

COMPOSE := docker compose -f deploy/compose.yaml

up: sync ## Build the images and run the system in containers (deploy/compose.yaml)
	@$(PY) scripts/deploy_env.py
	$(COMPOSE) up --build --detach --wait
	@echo "shop is up:"
	@echo "  web app and API   http://127.0.0.1:8000  (API docs /docs)"
	@echo "  Mailpit (email)   http://127.0.0.1:8025"
	@echo "  Jaeger (traces)   http://127.0.0.1:16686"
	@echo "  RabbitMQ UI       http://127.0.0.1:15672  (RABBITMQ_USER / RABBITMQ_PASSWORD in deploy/.env)"
	@echo "  Prometheus        http://127.0.0.1:9090  (targets, alert rules: /alerts)"
	@echo "  Grafana           http://127.0.0.1:3000  (dashboards in folder Shop; admin: GRAFANA_ADMIN_PASSWORD in deploy/.env)"
	@echo "  accounts          SHOP_ADMIN_* and SHOP_MANAGER_* in deploy/.env"

down: ## Stop and remove the containers (data volumes are kept)
	docker compose -p shop down

logs: ## Follow the containers' logs
	docker compose -p shop logs --follow --tail=100

bench: sync ## Full benchmark: levels 1-64, 10x/100x growth, Mongo layouts, 2 instances, profile
	$(PY) -m bench

bench-quick: sync ## Quick benchmark (<= 3 min): levels 1,4,16 at base size (bench/results/latest.*)
	$(PY) -m bench --quick

MINUTES ?= 10
soak: sync ## Soak: the shop at half bench's best rate for MINUTES (10): flat memory, bounded queues
	$(PY) -m bench.soak --minutes $(MINUTES)

chaos: sync ## Long fault suite: every fault under load, invariants (tests/reports/chaos.json)
	$(PY) -m tests.chaos.suite --long

clean: ## Remove local run state (embedded Mongo data, generated keys)
	rm -rf .run
