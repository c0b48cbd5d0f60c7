# The README's commands. `make run` runs the default MATRIX; `make test` runs every test.
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3

.PHONY: setup host-deps run test unit clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# On a machine whose Docker engine cannot pull, base images are made with debootstrap.
host-deps:
	@if ! command -v debootstrap >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing debootstrap (makes base images when no registry is reachable)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; \
	  else \
	    echo "note: debootstrap is not installed; it is needed only where no container registry is reachable"; \
	  fi; \
	fi

run: setup host-deps
	$(BIN)/orchestrate run matrix.yaml

test: setup host-deps
	$(BIN)/pytest

unit: setup
	$(BIN)/pytest tests/unit

clean:
	$(BIN)/orchestrate clean
