# overtone: `make run` starts the server, `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
E2E := tests/e2e
E2E_STAMP := $(E2E)/node_modules/.installed
CLINIC := examples/clinic
CLINIC_STAMP := $(CLINIC)/node_modules/.installed

.PHONY: run test lint typecheck pytest setup system-deps e2e-deps bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/overtone start

# Debian packages the tests need (Chromium, redis-server, nginx, supervisor); installed when missing.
SYSTEM_PACKAGES := chromium:chromium redis-server:redis-server /usr/sbin/nginx:nginx supervisord:supervisor
system-deps:
	@missing=""; for pair in $(SYSTEM_PACKAGES); do \
		command -v "$${pair%%:*}" >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
	@# Rolling restarts of --workers: connections queued on a worker that stops listening move
	@# to the others instead of being reset (Linux >= 5.14; docs/deploy.md). Best effort.
	@if [ "$$(id -u)" = 0 ] && [ -w /proc/sys/net/ipv4/tcp_migrate_req ]; then \
		echo 1 > /proc/sys/net/ipv4/tcp_migrate_req; fi

$(E2E_STAMP): $(E2E)/package.json $(E2E)/package-lock.json
	cd $(E2E) && npm ci --no-audit --no-fund --loglevel=error
	touch $(E2E_STAMP)

$(CLINIC_STAMP): $(CLINIC)/package.json $(CLINIC)/package-lock.json
	cd $(CLINIC) && npm ci --no-audit --no-fund --loglevel=error
	touch $(CLINIC_STAMP)

e2e-deps: $(E2E_STAMP) $(CLINIC_STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) system-deps e2e-deps
	$(BIN)/python -m pytest

test: lint typecheck pytest

bench: $(STAMP) system-deps
	$(BIN)/python -m benchmarks.run
	$(BIN)/python -m benchmarks.inprocess
	$(BIN)/python -m benchmarks.history
	$(BIN)/python -m benchmarks.dashboard
	$(BIN)/python -m benchmarks.replication

clean:
	rm -rf $(VENV) $(E2E)/node_modules $(CLINIC)/node_modules .mypy_cache .ruff_cache .pytest_cache
