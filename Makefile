# The README's two commands: `make run` and `make test`.
# `make run` installs only what serves Dalet locally (requirements-local.txt);
# `make test` and `make bench` add the test and benchmark tools (requirements-dev.txt).
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install install-local run test bench clean

$(VENV)/.created:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Dalet needs Python 3.11 or newer ($(PYTHON) is older; run make PYTHON=python3.11 ...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip<26.3"  # chalice 1.34 requires pip<26.3
	touch $@

# --no-compile: Python compiles what is imported when it is first imported; pip would compile every
# module of every package (a third of the install's CPU time, ~35 MB of bytecode never used).
$(VENV)/.installed-local: $(VENV)/.created requirements.txt requirements-local.txt
	$(PY) -m pip install -q --no-compile -r requirements-local.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed-local requirements-dev.txt
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

tests/browser/node_modules/.installed: tests/browser/package.json
	npm install --prefix tests/browser --no-audit --no-fund --silent
	touch $@

install-local: $(VENV)/.installed-local

install: $(VENV)/.installed-dev

run: install-local
	$(PY) -m dalet_ops.cli serve --host $(HOST) --port $(PORT)

# Static checks first (configured in pyproject.toml): ruff's lint and import order, mypy over the shipped code.
test: install tests/browser/node_modules/.installed
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest -q

bench: install
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) tests/browser/node_modules .pytest_cache .hypothesis .mypy_cache .ruff_cache
