"""Sphinx configuration: the documentation site, with every notebook executed.

Build with ``sphinx-build -W -b html . _build/html`` (or ``make docs``). The pages are
``docs/`` and the MyST notebooks of ``notebooks/``; myst-nb runs each notebook in a
fresh kernel on every build. A cell error (cells tagged ``raises-exception`` excepted)
is reported as a warning carrying the cell and its traceback, which ``-W`` turns into a
failed build, so the cause shows in the terminal.
"""

from __future__ import annotations

import agentmem

# The import name; the distribution is agentmem-services.
project = "agentmem"
author = "agentmem authors"
copyright = "agentmem authors"
release = agentmem.__version__
version = release

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]

root_doc = "docs/index"
# Only these are pages; everything else at the root (README, tests, the venv) is not.
include_patterns = ["docs/**", "notebooks/*.md"]
exclude_patterns = [
    "_build",
    ".venv",
    "notebooks/*.ipynb",
    "**/.ipynb_checkpoints",
    "jupyter_execute",
]

# Notebooks: executed on every build, never from a committed cache.
nb_execution_mode = "force"
nb_execution_timeout = 600
# Raising would stop Sphinx with only the notebook's name; as a warning, the failing
# cell and its traceback are printed (and -W still fails the build).
nb_execution_raise_on_error = False
nb_execution_show_tb = True
nb_merge_streams = True
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# API reference from docstrings.
autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
    "member-order": "bysource",
}
autodoc_typehints = "description"
autodoc_class_signature = "separated"
# Source links only for objects documented where they are defined: following a
# re-export makes viewcode link the defining module's page to anchors of the wrong page.
viewcode_follow_imported_members = False
napoleon_google_docstring = True
napoleon_numpy_docstring = False
nitpicky = False

html_theme = "furo"
html_title = f"agentmem {release}"
# Spacing and rules for the result tables that cells display.
html_static_path = ["docs/_static"]
html_css_files = ["agentmem.css"]
