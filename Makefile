# Set-up and entry points. `make demo` and `make test` work on a fresh machine with python3.11 and make:
# each creates what it needs (virtualenv, Airflow home, databases) and reuses it on the next run.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin

export AIRFLOW_HOME := $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__API__HOST := 127.0.0.1
export PATH := $(BIN):$(PATH)

DEMO_ACCOUNTS ?= 200
DEMO_SEED ?= 42
DEMO_BAD_ROWS ?= 0.01
DEMO_EXPORT := $(AIRFLOW_HOME)/landing/2026-10-31T2359-demo
EMULATOR_PORT ?= 8765
# The demo emulator keeps Intuit's limits, but its "minute" lasts 60 x DEMO_TIME_SCALE seconds.
DEMO_TIME_SCALE ?= 0.1
EMULATOR_URL := http://127.0.0.1:$(EMULATOR_PORT)
# The generated demo export spans 2025-01-01..2026-10-31; these settings make its scenarios meaningful.
export AIRFLOW_VAR_TAXDOME_QBO_SETTINGS ?= {"sync_start_date": "2026-01-01", "integration_date": "2025-07-01"}

API_PORT ?= 8080

.PHONY: help install airflow-home browser demo up down test lint format bench screenshots clean

help:
	@echo "make demo   - set up everything and run taxdome_qbo_sync end to end on a generated export"
	@echo "make up     - run Airflow (UI on 127.0.0.1:$(API_PORT)) with the emulator and the demo export; make down stops it"
	@echo "make test   - set up everything, lint, and run the whole test suite"
	@echo "make bench  - staging, planning, the sync's dry run task by task and with nothing changed, reconciliation, read-back and the UI pages (1M invoices), emulator throughput, QuickBooks load"
	@echo "make screenshots - the README's picture of each page of the TaxDome ↔ QuickBooks view (docs/screenshots/)"
	@echo "make install | airflow-home | lint | format | clean"

install: $(VENV)/.installed

# The lock first (`uv pip sync` removes whatever it does not list), then the project itself, editable, built
# by the lock's setuptools (no isolation, no dependency resolution: what is installed is what the lock says).
# Compiled to bytecode as pip does by default: uv leaves it to the first import, and where the environment
# forbids writing it (PYTHONDONTWRITEBYTECODE) every task process compiles Airflow, pandas and Great
# Expectations again, seconds of each task (measured: importing the task bodies 10 s -> 3 s).
$(VENV)/.installed: requirements.txt pyproject.toml requirements-runtime.in Makefile
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (PYTHON=...)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet --disable-pip-version-check "$$(grep -E '^uv==' requirements.txt)"
	$(BIN)/uv pip sync --quiet --compile-bytecode --python $(BIN)/python requirements.txt
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps --no-build-isolation --editable .
	@touch $@

airflow-home: $(AIRFLOW_HOME)/.migrated

$(AIRFLOW_HOME)/.migrated: $(VENV)/.installed
	@mkdir -p $(AIRFLOW_HOME)
	$(BIN)/airflow db migrate > $(AIRFLOW_HOME)/db-migrate.log 2>&1 || (tail -50 $(AIRFLOW_HOME)/db-migrate.log; exit 1)
	@touch $@

$(DEMO_EXPORT)/accounts.csv: | $(VENV)/.installed
	@rm -rf $(DEMO_EXPORT).partial
	$(BIN)/python -m taxdome_qbo.demo generate --out $(DEMO_EXPORT).partial \
		--accounts $(DEMO_ACCOUNTS) --seed $(DEMO_SEED) --bad-rows $(DEMO_BAD_ROWS)
	@mv $(DEMO_EXPORT).partial $(DEMO_EXPORT)

# The demo runs against the bundled QBO emulator (state kept in the Airflow home), stopped on the way out.
demo: airflow-home $(DEMO_EXPORT)/accounts.csv
	@$(BIN)/python -m qbo_emulator --host 127.0.0.1 --port $(EMULATOR_PORT) --db $(AIRFLOW_HOME)/qbo-emulator.db \
		--config '{"time_scale": $(DEMO_TIME_SCALE)}' \
		> $(AIRFLOW_HOME)/qbo-emulator.log 2>&1 & emulator=$$!; trap 'kill $$emulator 2>/dev/null' EXIT; \
	$(BIN)/python -c 'import sys; from qbo_emulator.testing import wait_until_answering; wait_until_answering(sys.argv[1])' \
		$(EMULATOR_URL) || { cat $(AIRFLOW_HOME)/qbo-emulator.log; exit 1; }; \
	echo "QBO emulator serving $(EMULATOR_URL) (state: $(AIRFLOW_HOME)/qbo-emulator.db)"; \
	$(BIN)/python -m taxdome_qbo.demo seed-qbo --export $(DEMO_EXPORT) --emulator $(EMULATOR_URL); \
	$(BIN)/python -m qbo_emulator.admin clear-requests $(EMULATOR_URL); \
	export AIRFLOW_CONN_QUICKBOOKS_DEFAULT="$$($(BIN)/python -m qbo_emulator.admin connection $(EMULATOR_URL))"; \
	$(BIN)/airflow dags test taxdome_qbo_sync > $(AIRFLOW_HOME)/demo-run.log 2>&1 \
		|| { tail -80 $(AIRFLOW_HOME)/demo-run.log; echo "taxdome_qbo_sync failed; full log: $(AIRFLOW_HOME)/demo-run.log"; exit 1; }; \
	echo "taxdome_qbo_sync succeeded (log: $(AIRFLOW_HOME)/demo-run.log)"; \
	$(BIN)/python -m taxdome_qbo staging-summary; \
	$(BIN)/python -m taxdome_qbo plan-summary; \
	$(BIN)/python -m taxdome_qbo load-summary; \
	echo "What the emulator served during the run:"; $(BIN)/python -m qbo_emulator.admin requests $(EMULATOR_URL); \
	$(BIN)/airflow dags test taxdome_qbo_reconcile -c '{"wait_for_sync": false}' > $(AIRFLOW_HOME)/demo-reconcile.log 2>&1 \
		|| grep -q "unexplained difference(s) between TaxDome and QuickBooks" $(AIRFLOW_HOME)/demo-reconcile.log \
		|| { tail -80 $(AIRFLOW_HOME)/demo-reconcile.log; echo "taxdome_qbo_reconcile failed; log: $(AIRFLOW_HOME)/demo-reconcile.log"; exit 1; }; \
	$(BIN)/python -m taxdome_qbo reconciliation-summary \
		|| echo "As planted: the demo company has a vendor named like a TaxDome account, so that account fails and its \
	invoices stay out of QuickBooks; a failure never explains a difference, so the verdict names them. Fix: rename the \
	account in TaxDome (or match it by hand), then python -m taxdome_qbo retry --object account:<id>."
	@echo "To see this run in the Airflow UI: make up, log in as it prints, and open TaxDome ↔ QuickBooks in the navigation (http://127.0.0.1:$(API_PORT)/taxdome-qbo/)."

# The local deployment: api-server, scheduler, dag-processor and triggerer (and the QBO emulator unless
# quickbooks_default is configured) as background processes; `make down` stops exactly those, by pid.
up: airflow-home $(DEMO_EXPORT)/accounts.csv
	$(BIN)/python -m taxdome_qbo.deployment up --api-port $(API_PORT) --emulator-port $(EMULATOR_PORT) \
		--demo-export $(DEMO_EXPORT) --time-scale $(DEMO_TIME_SCALE)

down:
	$(BIN)/python -m taxdome_qbo.deployment down

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The report test renders the reconciliation's HTML in Debian's Chromium: installed once, if missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium > /dev/null; } \
		|| echo "could not install Debian's chromium: the browser test of the report will be skipped"

test: airflow-home lint browser
	$(BIN)/python -m pytest -q --durations=15

# The view's browser tests, on the demo firm, also write the README's picture of each page.
screenshots: install browser
	TAXDOME_QBO_DOCS_SCREENSHOTS=$(CURDIR)/docs/screenshots $(BIN)/python -m pytest -q tests/test_browser_view.py

bench: install
	$(BIN)/python bench/stage.py
	$(BIN)/python bench/plan.py
	$(BIN)/python bench/task_path.py
	$(BIN)/python bench/plan_skip.py
	$(BIN)/python bench/emulator.py
	$(BIN)/python bench/load.py
	$(BIN)/python bench/operations_file.py
	$(BIN)/python bench/reconcile.py
	$(BIN)/python bench/readback.py
	$(BIN)/python bench/ui_pages.py

clean:
	rm -rf $(AIRFLOW_HOME) bench/out
