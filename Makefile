# hulk_mm: `make quickstart` (the main job on the embedded SynthHuman default) and `make test`.
# Both install what they need on first use (tools/install.sh: idempotent, seconds when done).
VENV ?= $(if $(HULK_VENV),$(HULK_VENV),.venv)
export HULK_VENV := $(abspath $(VENV))
PYTHON := $(HULK_VENV)/bin/python

.PHONY: install quickstart test test-all

install:
	@bash tools/install.sh

quickstart: install
	$(PYTHON) tools/quickstart.py

test: install
	$(PYTHON) -m pytest -m "not slow" tests

test-all: install
	$(PYTHON) -m pytest tests
