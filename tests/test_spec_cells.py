"""The specification's code cells, run verbatim against agentmem.

The two specification documents (``services.md`` and ``memory_service.md``, MyST
notebooks written for AgentScope Runtime 1.0) are read from ``../shared/spec`` relative
to the repository root, or from the directory named by ``AGENTMEM_SPEC_DIR``. Each
document's code cells run in order in one namespace, with top-level ``await``, the only
change being the import prefix (``agentscope_runtime.engine.`` and
``agentscope_runtime.`` become ``agentmem.``). Each cell is then one test.

Every cell must pass, except those of :data:`NAME_ERRORS`, which use a name the
documents never define; they must fail with exactly that ``NameError``.
"""

from __future__ import annotations

import ast
import inspect
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import jupytext
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SPEC_DIR = Path(os.environ.get("AGENTMEM_SPEC_DIR") or REPO_ROOT.parent / "shared" / "spec")
DOCUMENTS = ("services.md", "memory_service.md")
TOTAL_CELLS = 21

#: Cells that use a name no cell of the document defines, and that name.
NAME_ERRORS: dict[tuple[str, str], str] = {
    # ``user_id`` is only ever defined inside functions before this cell.
    ("services.md", "Deleting Sessions"): "user_id",
    # ``session_id`` would come from "Deleting Sessions", which fails before defining it.
    ("services.md", "Deleting Memory"): "session_id",
}

_PREFIX = re.compile(r"\bagentscope_runtime\.(?:engine\.)?")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")


@dataclass(frozen=True)
class SpecCell:
    document: str
    index: int
    label: str
    source: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.document, self.label)


def _headings(markdown: str) -> list[tuple[int, str]]:
    """The (level, title) of each heading of a markdown cell, outside fenced code."""
    found: list[tuple[int, str]] = []
    fenced = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and (match := _HEADING.match(line)):
            found.append((len(match.group(1)), match.group(2)))
    return found


def read_cells(document: str) -> list[SpecCell]:
    """The code cells of a document, labelled by their nearest heading.

    A heading shared by several cells is prefixed with its parent heading.
    """
    notebook = jupytext.read(SPEC_DIR / document, fmt="md:myst")
    stack: list[tuple[int, str]] = []
    raw: list[tuple[list[tuple[int, str]], str]] = []
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for level, title in _headings(cell.source):
                stack = [entry for entry in stack if entry[0] < level] + [(level, title)]
        elif cell.cell_type == "code":
            raw.append((list(stack), _PREFIX.sub("agentmem.", cell.source)))
    titles = [path[-1][1] for path, _ in raw]
    cells = []
    for index, (path, source) in enumerate(raw):
        label = path[-1][1]
        if titles.count(label) > 1:
            label = f"{path[-2][1]} / {label}"
        cells.append(SpecCell(document, index, label, source))
    return cells


def _all_cells() -> list[SpecCell]:
    if not all((SPEC_DIR / document).is_file() for document in DOCUMENTS):
        return []
    return [cell for document in DOCUMENTS for cell in read_cells(document)]


CELLS = _all_cells()
_SKIP_REASON = (
    f"specification documents not found in {SPEC_DIR} (set AGENTMEM_SPEC_DIR to the "
    "directory holding services.md and memory_service.md)"
)


def _params() -> list[object]:
    if not CELLS:
        return [pytest.param(None, marks=pytest.mark.skip(reason=_SKIP_REASON), id="no-spec")]
    params: list[object] = []
    for cell in CELLS:
        params.append(pytest.param(cell, id=f"{cell.document}:{cell.index}:{cell.label}"))
    return params


async def _run_document(cells: list[SpecCell]) -> dict[tuple[str, int], BaseException | None]:
    namespace: dict[str, object] = {"__name__": "__spec__"}
    outcomes: dict[tuple[str, int], BaseException | None] = {}
    for cell in cells:
        try:
            code = compile(
                cell.source,
                f"<{cell.document} cell {cell.index}>",
                "exec",
                flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
            )
            result = eval(code, namespace)
            if inspect.iscoroutine(result):
                await result
        except Exception as exc:
            outcomes[(cell.document, cell.index)] = exc
        else:
            outcomes[(cell.document, cell.index)] = None
    return outcomes


@pytest.fixture(scope="module")
async def outcomes() -> AsyncIterator[dict[tuple[str, int], BaseException | None]]:
    results: dict[tuple[str, int], BaseException | None] = {}
    for document in DOCUMENTS:
        results.update(await _run_document([c for c in CELLS if c.document == document]))
    yield results


def test_the_documents_have_the_expected_cells() -> None:
    if not CELLS:
        pytest.skip(_SKIP_REASON)
    assert len(CELLS) == TOTAL_CELLS
    labels = {cell.key for cell in CELLS}
    assert set(NAME_ERRORS) <= labels


@pytest.mark.parametrize("cell", _params())
def test_spec_cell(cell: SpecCell, outcomes: dict[tuple[str, int], BaseException | None]) -> None:
    error = outcomes[(cell.document, cell.index)]
    if cell.key in NAME_ERRORS:
        assert isinstance(error, NameError), f"expected a NameError, got {error!r}"
        assert error.name == NAME_ERRORS[cell.key]
        return
    if error is not None:
        raise error
