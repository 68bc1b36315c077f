# The two commands of the README, on a fresh machine with Python 3.11 and pip:
#   make docs   install everything into .venv, then build the executed documentation and
#               check the built site (internal links, executed notebook pages)
#   make test   install everything into .venv, then ruff, mypy and the whole test suite,
#               and the ReMe tests in .venv-reme (ReMe's pins clash with the other extras)
# And for reading the guides as notebooks:
#   make lab    install JupyterLab into .venv and open the quickstart in it
# VENV=/path/to/venv uses another virtual environment.

VENV ?= .venv
REME_VENV ?= .venv-reme
PYTHON ?= $(shell command -v python3.11 || command -v python3)
BIN := $(VENV)/bin
# Reinstall when the dependencies change.
STAMP := $(VENV)/.agentmem-installed
LAB_STAMP := $(VENV)/.agentmem-lab-installed
# JupyterLab reads the settings of its environment too: set there, .md notebooks open
# as notebooks without touching the user's own Jupyter settings.
LAB_SETTINGS := $(VENV)/etc/jupyter/labconfig/default_setting_overrides.json

.PHONY: install docs test lint typecheck pytest test-reme lab clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e ".[all]"
	touch $(STAMP)

docs: install
	rm -rf _build/html _build/jupyter_execute
	$(BIN)/sphinx-build -W --keep-going -b html . _build/html
	$(BIN)/python -m tests.site_check _build/html
	@echo "Documentation: _build/html/docs/index.html"

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

# pytest exits with 5 when it collects no test; make treats that as a failure too.
pytest: install
	$(BIN)/pytest

$(REME_VENV)/.agentmem-installed: pyproject.toml
	test -x $(REME_VENV)/bin/python || $(PYTHON) -m venv $(REME_VENV)
	$(REME_VENV)/bin/python -m pip install --upgrade pip
	$(REME_VENV)/bin/python -m pip install -e ".[reme]" "pytest>=8" "pytest-asyncio>=0.23"
	touch $@

# The root conftest loads the notebook plugin, which this environment does not need.
test-reme: $(REME_VENV)/.agentmem-installed
	$(REME_VENV)/bin/pytest --noconftest -p no:cacheprovider tests/hosted/test_reme.py

test: lint typecheck pytest test-reme

$(LAB_STAMP): $(STAMP)
	$(BIN)/python -m pip install -e ".[lab]"
	$(BIN)/jupytext-config --settings-file $(LAB_SETTINGS) set-default-viewer markdown myst
	touch $@

lab: $(LAB_STAMP)
	$(BIN)/jupyter lab notebooks/quickstart.md

clean:
	rm -rf _build
