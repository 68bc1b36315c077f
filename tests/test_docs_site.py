"""The checks ``make docs`` runs on the built site (:mod:`tests.site_check`), on small
sites made here: each problem they exist for is found, and a sound site passes."""

from __future__ import annotations

import sys
import zlib
from pathlib import Path

import pytest

from tests import site_check


def inventory(names: list[str]) -> bytes:
    """An ``objects.inv`` in Sphinx's format naming ``names``."""
    lines = "".join(f"{name} py:class 1 api.html#$ -\n" for name in names)
    header = b"# Sphinx inventory version 2\n# Project: t\n# Version: 1\n# zlib\n"
    return header + zlib.compress(lines.encode())


def every_public_name() -> list[str]:
    names = []
    for module in site_check.public_modules():
        imported = __import__(module, fromlist=["__all__"])
        names.extend(f"{module}.{name}" for name in getattr(imported, "__all__", ()))
    return names


def notebook_page(outputs: bool) -> str:
    output = '<div class="cell_output docutils container"><pre>42</pre></div>'
    return f'<div class="cell docutils container">{output if outputs else ""}</div>'


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A sound site: an index linking to a notebook page that shows an output."""
    root = tmp_path / "html"
    (root / "notebooks").mkdir(parents=True)
    (root / "index.html").write_text(
        '<a href="notebooks/guide.html#usage">guide</a><a href="https://example.com">x</a>'
    )
    (root / "notebooks" / "guide.html").write_text(
        f'<h2 id="usage">Usage</h2>{notebook_page(True)}<a href="../index.html">up</a>'
    )
    (root / "objects.inv").write_bytes(inventory(every_public_name()))
    return root


def test_a_sound_site_passes(site: Path) -> None:
    assert site_check.check_site(site, [Path("notebooks/guide.md")]) == []


def test_a_link_to_a_missing_page_or_anchor_is_found(site: Path) -> None:
    (site / "index.html").write_text(
        '<a href="notebooks/gone.html">a</a><a href="notebooks/guide.html#nowhere">b</a>'
    )
    assert site_check.check_site(site, [Path("notebooks/guide.md")]) == [
        "index.html: broken link notebooks/gone.html",
        "index.html: link notebooks/guide.html#nowhere names a missing anchor",
    ]


def test_a_mailto_link_is_found(site: Path) -> None:
    (site / "index.html").write_text('<a href="mailto:recall%4010">recall@10</a>')
    assert site_check.check_site(site, [Path("notebooks/guide.md")]) == [
        "index.html: a mailto link: mailto:recall%4010"
    ]


def test_a_notebook_page_without_outputs_is_found(site: Path) -> None:
    (site / "notebooks" / "guide.html").write_text(
        f'<h2 id="usage">Usage</h2>{notebook_page(False)}'
    )
    notebooks = [Path("notebooks/guide.md"), Path("notebooks/missing.md")]
    assert site_check.check_site(site, notebooks) == [
        "notebooks/guide.html holds no executed output",
        "notebooks/missing.md has no page in the site",
    ]


def test_a_path_of_the_building_machine_is_found(site: Path) -> None:
    shown = f"{site_check.ROOT}/agentmem/search/ranking.py"
    (site / "notebooks" / "guide.html").write_text(
        f'<h2 id="usage">Usage</h2>{notebook_page(True)}<pre>File {shown}</pre>'
    )
    assert site_check.check_site(site, [Path("notebooks/guide.md")]) == [
        f"notebooks/guide.html shows the path {site_check.ROOT}"
    ]
    assert sys.prefix in site_check._machine_paths()


def test_a_public_name_missing_from_the_reference_is_found(site: Path) -> None:
    names = [name for name in every_public_name() if not name.endswith(".MemoryHitList")]
    (site / "objects.inv").write_bytes(inventory(names))
    problems = site_check.check_site(site, [Path("notebooks/guide.md")])
    assert "agentmem.MemoryHitList is not in the API reference" in problems


def test_a_relative_site_path_is_checked_alike(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(site.parent)
    assert site_check.check_site(Path(site.name), [Path("notebooks/guide.md")]) == []


def test_the_command_line_reports_and_fails(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (site / "index.html").write_text('<a href="nowhere.html">x</a>')
    assert site_check.main([str(site)]) == 1
    assert "index.html: broken link nowhere.html" in capsys.readouterr().err
