"""Collect MyST markdown notebooks as nbval tests.

Every ``.md`` file that pytest visits and whose front matter declares jupytext's
``myst`` format is converted in memory by jupytext, written as ``.ipynb`` to a
temporary directory outside the repository (removed when the session ends) and run by
nbval, cell after cell, in one kernel of the interpreter running pytest. Outputs are
not compared (nbval's "lax" mode): a cell passes when it does not raise, or when it is
tagged ``raises-exception``.

The plugin is enabled by the repository's root ``conftest.py``, so a plain ``pytest``
runs every notebook of ``notebooks/`` without extra options.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import jupytext
import nbformat
import pytest
from _pytest.compat import LEGACY_PATH, legacy_path
from nbval.plugin import IPyNbFile

_TMP_DIR = pytest.StashKey[Path]()
_HEADER_LINES = 30


def is_myst_notebook(path: Path) -> bool:
    """Whether ``path`` is a markdown file with a jupytext MyST front matter."""
    if path.suffix != ".md":
        return False
    with path.open(encoding="utf-8") as stream:
        if stream.readline().strip() != "---":
            return False
        header = []
        for _ in range(_HEADER_LINES):
            line = stream.readline()
            if not line or line.strip() == "---":
                break
            header.append(line.strip())
    return "jupytext:" in header and "format_name: myst" in header


class MystNotebookFile(IPyNbFile):
    """nbval's notebook collector, reading a MyST markdown notebook instead of an .ipynb.

    The node keeps the ``.md`` path, so failures read ``notebooks/x.md::Cell 3``; only
    nbval's reading of ``fspath`` is pointed at the converted copy.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.compare_outputs = False
        self._converted: Path | None = None

    @property
    def fspath(self) -> LEGACY_PATH:
        return legacy_path(self._converted or self.path)

    def collect(self) -> Any:
        notebook = jupytext.read(self.path, fmt="md:myst")
        handle, name = tempfile.mkstemp(
            dir=self.config.stash[_TMP_DIR], prefix=f"{self.path.stem}-", suffix=".ipynb"
        )
        os.close(handle)
        target = Path(name)
        nbformat.write(notebook, target)
        self._converted = target
        yield from super().collect()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_TMP_DIR] = Path(tempfile.mkdtemp(prefix="agentmem-notebooks-"))
    # Run the kernel with the interpreter running pytest, whatever kernel the
    # notebook names, so the notebooks see the installed agentmem.
    if not config.option.nbval_kernel_name:
        config.option.nbval_current_env = True


def pytest_unconfigure(config: pytest.Config) -> None:
    directory = config.stash.get(_TMP_DIR, None)
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if is_myst_notebook(file_path):
        collector: MystNotebookFile = MystNotebookFile.from_parent(parent, path=file_path)
        return collector
    return None
