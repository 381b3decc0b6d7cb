# overtone: `make run` starts the server, `make test` runs every check.
SHELL := bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
STAMP := $(VENV)/.installed
LOWEST := .venv-lowest
# uv uses this machine's Python, never one it would download, and syncs into $(VENV).
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
E2E := tests/e2e
E2E_STAMP := $(E2E)/node_modules/.installed
CLINIC := examples/clinic
CLINIC_STAMP := $(CLINIC)/node_modules/.installed

.PHONY: run test lint typecheck pytest setup system-deps e2e-deps bench clean lock check-lock test-lowest

# The development environment is installed from uv.lock: every package at the exact version
# and hash the lock names (uv itself from requirements/uv.txt, hashes checked by pip).
$(UV): requirements/uv.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements/uv.txt
	touch $(UV)

$(STAMP): pyproject.toml uv.lock constraints.txt $(UV)
	@$(MAKE) --no-print-directory check-lock
	$(UV) sync --quiet --locked --inexact --extra dev --python $(BIN)/python
	touch $(STAMP)

# Fails, saying what to do, when pyproject.toml and the lock (or the constraints exported
# from it) disagree.
EXPORT_CONSTRAINTS := $(UV) export --frozen --quiet --no-emit-project --no-hashes --extra redis \
	--format requirements-txt | sed 1,2d
check-lock: $(UV)
	@$(UV) lock --check --quiet --python $(BIN)/python 2>/dev/null || { \
		echo "uv.lock does not match pyproject.toml: run 'make lock' and commit uv.lock and constraints.txt" >&2; exit 1; }
	@$(EXPORT_CONSTRAINTS) | cmp -s - <(sed 1,4d constraints.txt) || { \
		echo "constraints.txt does not match uv.lock: run 'make lock' and commit constraints.txt" >&2; exit 1; }

# Refreshes the lock to the newest versions pyproject.toml allows (and uv to its newest release),
# then exports the production constraints from it. Review the diff, run `make test`, commit.
lock: $(UV)
	echo uv | $(UV) pip compile - --quiet --upgrade --generate-hashes --python-version 3.11 \
		--custom-compile-command 'make lock' -o requirements/uv.txt
	$(BIN)/pip install --quiet --require-hashes -r requirements/uv.txt
	touch $(UV)
	$(UV) lock --upgrade --python $(BIN)/python
	{ echo "# The exact versions CI tested, for production installs:"; \
	  echo "#   pip install -c constraints.txt 'overtone-<version>-py3-none-any.whl[redis]'"; \
	  echo "# Exported from uv.lock by 'make lock'; do not edit."; echo "#"; \
	  $(EXPORT_CONSTRAINTS); } > constraints.txt
	$(UV) sync --quiet --locked --inexact --extra dev --python $(BIN)/python
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/overtone start

# Debian packages the tests need (Chromium, redis-server, nginx, supervisor, and gcc with
# OpenSSL's headers for the benchmarks' compiled load client); installed when missing.
SYSTEM_PACKAGES := chromium:chromium redis-server:redis-server /usr/sbin/nginx:nginx \
	supervisord:supervisor gcc:gcc /usr/include/openssl/hmac.h:libssl-dev
system-deps:
	@missing=""; for pair in $(SYSTEM_PACKAGES); do \
		command -v "$${pair%%:*}" >/dev/null 2>&1 || [ -e "$${pair%%:*}" ] || \
			missing="$$missing $${pair#*:}"; done; \
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

# The lowest versions pyproject.toml allows for overtone's own dependencies (the test tools at
# the lock's versions): the core and cluster tests, and mypy on the cluster broker, which
# leans on redis-py's typing. A lower bound that no longer holds fails here.
LOWEST_TOOLS := pytest|pytest-asyncio|hypothesis|pusher|mypy
test-lowest: $(STAMP) system-deps
	rm -rf $(LOWEST)
	$(UV) venv --quiet --python $(PYTHON) $(LOWEST)
	$(UV) export --frozen --quiet --no-emit-project --no-hashes --extra dev --format requirements-txt \
		| grep -E '^($(LOWEST_TOOLS))==' > $(LOWEST)/tools.txt
	$(UV) pip install --quiet --python $(LOWEST)/bin/python --resolution lowest-direct \
		-e . -r $(LOWEST)/tools.txt
	$(UV) pip list --python $(LOWEST)/bin/python --format freeze | grep -E '^(httptools|orjson|python-dotenv|redis|prometheus.client|httpx|websockets|uvloop)=='
	$(LOWEST)/bin/mypy src/overtone/cluster
	$(LOWEST)/bin/python -m pytest -q -p no:cacheprovider tests/core tests/cluster

bench: $(STAMP) system-deps
	$(BIN)/python -m benchmarks.run
	$(BIN)/python -m benchmarks.inprocess
	$(BIN)/python -m benchmarks.history
	$(BIN)/python -m benchmarks.dashboard
	$(BIN)/python -m benchmarks.replication
	$(BIN)/python -m benchmarks.fallback
	$(BIN)/python -m benchmarks.counts

clean:
	rm -rf $(VENV) $(LOWEST) $(E2E)/node_modules $(CLINIC)/node_modules .mypy_cache .ruff_cache .pytest_cache
