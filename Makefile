# The two commands of the README. Both do all set-up on a fresh Debian 12 machine (as root).
#   make conformance   grade this host, write reports/<run-id>/ and reports/latest
#   make test          the self-tests
# make cannot pass through an exit code other than 0 or 2: `scripts/conformance` (what
# `make conformance` runs) exits with the suite's own 0/1/2, and reports/latest/exit_code keeps it.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.sevkit-installed
PYTEST_ARGS ?=

.PHONY: conformance test env hostdeps image bench lint clean fleet-demo

hostdeps:
	@scripts/host-deps.sh

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

env: hostdeps $(STAMP)
	@echo "sevkit: environment ready ($(VENV))"

image: env
	$(PY) -m sevkit image build

conformance:
	@scripts/conformance $(PYTEST_ARGS)

test: env image lint
	@cd tests && ../$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then rc=0; fi; exit $$rc

lint: env
	$(VENV)/bin/ruff check sevkit fixtures suites tests
	$(VENV)/bin/mypy

# a labgrid coordinator + exporter + three network-namespace hosts, one fleet run, torn down (root)
fleet-demo: env
	$(PY) -m benchmarks.fleet demo

bench: env image
	$(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) reports/2*
