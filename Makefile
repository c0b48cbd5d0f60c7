# The README's commands. `make run` runs the default MATRIX; `make test` runs every test.
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3
# Every package the host side installs, at the version it was tested with (the images have their own locks).
CONSTRAINTS := constraints.txt

.PHONY: setup setup-test run-deps test-deps run test unit unit-system lock clean bench

# What running needs: the package and its dependencies.
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) -e .
	touch $@

# What testing needs besides: the test extra (pytest, hypothesis, linters, playwright).
setup-test: $(VENV)/.installed-test

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) -e '.[test]'
	touch $@

# `make lock` remakes constraints.txt from a venv made with the test extra (after changing pyproject.toml).
lock: setup-test
	$(BIN)/pip freeze --exclude-editable | grep -v '^orchestrate' > $(CONSTRAINTS)

# On a machine whose Docker engine cannot pull, base images are made with debootstrap.
run-deps:
	@if ! command -v debootstrap >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing debootstrap (makes base images when no registry is reachable)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; \
	  else \
	    echo "note: debootstrap is not installed; it is needed only where no container registry is reachable"; \
	  fi; \
	fi

# The workflow lint runs shellcheck: the test extra's wheel has it on x86-64 only, elsewhere
# the distribution's package gives it. The browser test opens report.html in Debian's headless
# chromium (driven by playwright, which downloads no browser of its own).
test-deps: run-deps
	@if ! command -v shellcheck >/dev/null 2>&1 && [ ! -x $(BIN)/shellcheck ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing shellcheck (actionlint checks the workflows' run: scripts with it)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null; \
	  else \
	    echo "note: shellcheck is not installed; tests/unit/test_workflows.py needs it (apt-get install shellcheck)"; \
	  fi; \
	fi
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium (the browser test opens report.html in it, headless and offline)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "note: chromium is not installed; tests/integration/test_browser.py needs it (apt-get install chromium)"; \
	  fi; \
	fi

# How the command line and the report scale (not a test): see benchmarks/scale.py.
bench: setup
	$(BIN)/python benchmarks/scale.py startup
	$(BIN)/python benchmarks/scale.py plan --cells 10000
	$(BIN)/python benchmarks/scale.py report --records 10000

run: setup run-deps
	$(BIN)/orchestrate run matrix.yaml

test: setup-test test-deps
	$(BIN)/pytest

unit: setup-test
	$(BIN)/pytest tests/unit

# The unit tests again under the system's own python3 (Debian 12: 3.11.2, the oldest 3.11 we
# support: no tarfile extraction filter, the pax parser before CVE-2024-6232's fix), in its own venv.
SYSTEM_PYTHON ?= /usr/bin/python3
unit-system:
	$(MAKE) unit VENV=.venv-system PYTHON=$(SYSTEM_PYTHON)

clean:
	$(BIN)/orchestrate clean
