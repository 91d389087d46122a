# seaport: `make plan` (offline plan of a stack) and `make test` work on a fresh machine.
SHELL := /bin/bash
STACK ?= dev
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Debian packages the tests drive for real (broker, browser, linters, diagrams, the 4.3 broker's root).
SYSTEM_TOOLS := rabbitmq-server:rabbitmq-server chromium:chromium shellcheck:shellcheck dot:graphviz mmdebstrap:mmdebstrap
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Which RabbitMQ the tests, benchmarks and `make local` run: 4.3 (default), the release seaport deploys, from a
# Debian root of its own (devtools/rabbitmq_root.py, built once into build/rabbitmq-root); or debian, the
# machine's own package (Debian 12: 3.10, end of life, faster to set up).
RABBITMQ ?= 4.3
RABBITMQ_ROOT := build/rabbitmq-root
ifeq ($(RABBITMQ),4.3)
BROKER := SEAPORT_RABBITMQ_ROOT=$(RABBITMQ_ROOT)
BROKER_SETUP := rabbitmq-root
else ifeq ($(RABBITMQ),debian)
BROKER := SEAPORT_RABBITMQ_ROOT=
BROKER_SETUP :=
else
$(error RABBITMQ=$(RABBITMQ): accepted values are 4.3 (the release seaport deploys, the default) and debian (the machine's package))
endif

.PHONY: plan test lint bench local sysdeps docs clean lock scan rabbitmq-root

# The locks (pip-tools, with hashes) are what gets installed: here, in CI and by `pulumi install`
# (Pulumi's pip toolchain reads requirements.txt). `make lock` recompiles them from the *.in ranges.
$(VENV)/.stamp: requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "==> installing the locked Python dependencies into $(VENV) (first run takes about a minute)"
	$(PY) -m pip install --quiet --require-hashes -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

LOCK := $(VENV)/bin/pip-compile --quiet --generate-hashes --no-emit-index-url --no-emit-find-links --strip-extras --allow-unsafe

## lock: recompile requirements.txt, requirements-dev.txt and requirements-scan.txt from requirements*.in (then run make test)
lock: $(VENV)/.stamp
	$(LOCK) requirements.in -o requirements.txt
	$(LOCK) requirements-dev.in -o requirements-dev.txt
	$(LOCK) requirements-scan.in -o requirements-scan.txt

## plan: offline plan of STACK (default dev) into build/$(STACK), checked by the policy pack
plan: $(VENV)/.stamp
	$(PY) -m seaport.tools.synth --stack $(STACK) --out build/$(STACK)
	$(PY) -m policy.offline build/$(STACK)/resources.json

## scan: checkov over the prod stack's offline plan; fails on a finding policy/accepted_findings.yaml doesn't accept
# checkov has its own virtualenv and lock: it pins many libraries the project's lock can't share.
SCAN_VENV := .venv-scan
$(SCAN_VENV)/.stamp: requirements-scan.txt
	@test -x $(SCAN_VENV)/bin/python || $(PYTHON) -m venv $(SCAN_VENV)
	@printf '*\n' > $(SCAN_VENV)/.gitignore
	@echo "==> installing the locked scanner (checkov) into $(SCAN_VENV) (first run takes about a minute)"
	@# The lock lists every dependency (--no-deps skips resolving them again); bytecode is compiled on first use.
	$(SCAN_VENV)/bin/python -m pip install --quiet --require-hashes --no-deps --no-compile -r requirements-scan.txt
	@touch $@

scan: $(VENV)/.stamp $(SCAN_VENV)/.stamp
	$(PY) -m seaport.tools.synth --stack prod --out build/prod
	$(PY) -m devtools.scan build/prod/resources.json --checkov $(SCAN_VENV)/bin/checkov

## sysdeps: install the Debian packages the tests need, when missing (needs root or sudo)
sysdeps:
	@missing=""; for pair in $(SYSTEM_TOOLS); do \
	  command -v "$${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/$${pair%%:*}" ] || missing="$$missing $${pair##*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "==> installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

## rabbitmq-root: RabbitMQ 4.3 in a Debian root of its own, when missing (about 30 s, 230 MB; needs root or sudo)
rabbitmq-root: $(VENV)/.stamp sysdeps
	@$(PY) -m devtools.rabbitmq_root version --root $(RABBITMQ_ROOT) >/dev/null 2>&1 || \
	  $(SUDO) $(PY) -m devtools.rabbitmq_root build --root $(RABBITMQ_ROOT)

## test: the whole suite (unit tests with mocks, apps against a real broker, browser)
# In TEST_WORKERS processes (pytest-xdist): most tests wait on brokers, browsers and timeouts, so three
# workers on two cores take about 60 % of the time of one (5.5 against 9.4 minutes here). A worker gets
# a module at a time, the cluster's modules together and first (tests/conftest.py). TEST_WORKERS=0: one process.
TEST_WORKERS ?= 3
test: $(VENV)/.stamp sysdeps $(BROKER_SETUP)
	$(BROKER) $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

## lint: ruff (check + format) and hadolint over every Dockerfile
lint: $(VENV)/.stamp
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/hadolint --config .hadolint.yaml apps/Dockerfile

## bench: throughput, latency and scaling benchmarks (minutes) into build/bench/; README figures into docs/performance/
bench: $(VENV)/.stamp sysdeps $(BROKER_SETUP)
	$(BROKER) $(PY) -m benchmarks

## local: run the apps on loopback (Ctrl-C stops everything)
local: $(VENV)/.stamp $(BROKER_SETUP)
	$(BROKER) $(PY) -m devtools.local

clean:
	@# The RabbitMQ root belongs to root (it was built with sudo when make ran as another user).
	$(SUDO) rm -rf $(RABBITMQ_ROOT)
	rm -rf build .pytest_cache

## docs: regenerate README.md's generated sections (architecture diagram, settings table)
docs: $(VENV)/.stamp
	$(PY) -m devtools.readme
