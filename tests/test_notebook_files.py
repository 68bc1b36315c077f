"""The notebooks of notebooks/ open in JupyterLab as notebooks and save back unchanged.

JupyterLab reads and writes them through Jupytext with the repository's
``jupytext.toml``; a notebook run and saved there gains outputs, the kernel's own
metadata and the view state of its cells. Saving must drop all of that, so the file
changes only where its author edited it.
"""

from __future__ import annotations

from pathlib import Path

import jupytext
import pytest
from ipykernel.kernelspec import get_kernel_dict
from jupytext.config import load_jupytext_config

from tests.notebook_plugin import is_myst_notebook

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = [
    pytest.param(path, id=path.name)
    for path in sorted((ROOT / "notebooks").glob("*.md"))
    if is_myst_notebook(path)
]


def test_there_are_notebooks() -> None:
    assert len(NOTEBOOKS) >= 5


@pytest.mark.parametrize("path", NOTEBOOKS)
def test_a_notebook_saved_from_jupyterlab_is_unchanged(path: Path) -> None:
    config = load_jupytext_config(str(path))
    assert config is not None and config.formats == ["md:myst"]
    text = path.read_text(encoding="utf-8")
    notebook = jupytext.reads(text, fmt="md:myst", config=config)
    kernel = get_kernel_dict()
    notebook.metadata["kernelspec"] = {
        "display_name": kernel["display_name"],
        "language": kernel["language"],
        "name": "python3",
    }
    notebook.metadata["language_info"] = {"name": "python", "pygments_lexer": "ipython3"}
    for number, cell in enumerate(notebook.cells, start=1):
        if cell.cell_type != "code":
            continue
        cell.metadata.update(
            {"execution": {"iopub.execute_input": "2025-01-01T00:00:00Z"}, "scrolled": True}
        )
        cell.metadata["jupyter"] = {"outputs_hidden": True, "source_hidden": True}
        cell.outputs = [{"output_type": "stream", "name": "stdout", "text": "out\n"}]
        cell.execution_count = number
    assert jupytext.writes(notebook, "md:myst", config=config) == text


@pytest.mark.parametrize("path", NOTEBOOKS)
def test_code_fits_the_page(path: Path) -> None:
    # The site shows about 88 columns of code before it scrolls sideways.
    notebook = jupytext.read(path, fmt="md:myst")
    wide = [
        line
        for cell in notebook.cells
        if cell.cell_type == "code"
        for line in cell.source.splitlines()
        if len(line) > 88
    ]
    assert wide == []
