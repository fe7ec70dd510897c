# The two commands of the quick start: `make run` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= waypost.example.yaml

.PHONY: run test lint bench setup clean ui browser codex axe

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

setup: $(BIN)/.installed

run: setup
	$(BIN)/waypost serve --config $(CONFIG)

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

# The whole suite runs on SQLite, on every core (pytest-xdist). Then the suites where the database
# itself is under test (the store, identity, the control plane, the CLI, metering, budgets) run again on PostgreSQL
# (127.0.0.1:5432, or $$WAYPOST_TEST_POSTGRES_URL). End-to-end, conformance and API-shape tests go
# through the same repositories whatever the backend, so they run once.
DATABASE_SUITES := tests/store tests/identity tests/control tests/cli tests/metering tests/budgets tests/responses
WORKERS ?= auto

test: lint browser codex axe
	$(BIN)/pytest -n $(WORKERS)
	WAYPOST_TEST_DATABASE=postgresql $(BIN)/pytest -n $(WORKERS) $(DATABASE_SUITES)

# The UI tests' browser: Debian's chromium (scripts/install-chromium; nothing when it is there).
browser:
	scripts/install-chromium

# The Responses API client tests' Codex CLI: npm's @openai/codex, pinned, under .tools/codex
# (scripts/install-codex; nothing when that version is there).
codex:
	scripts/install-codex

# The UI accessibility test's rules engine: npm's axe-core, pinned, under .tools/axe (scripts/install-axe).
axe:
	scripts/install-axe

# The README's pictures of the UI (docs/screenshots/*.png), taken in that browser on made-up data.
screenshots: setup browser
	$(BIN)/python -m tests.ui.screenshots

# The web UI (ui/, Vite + Preact + TypeScript) built into src/waypost/ui/dist, which is committed:
# only a change to ui/ needs Node; tests/ui/test_build_info.py fails when the build is stale.
ui:
	cd ui && npm ci --no-audit --no-fund && npm run build

bench: setup
	bench/run

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
