"""Checks of the built documentation site, run by ``make docs`` after Sphinx.

    python -m tests.site_check _build/html

Sphinx checks the references it resolves; these check what it does not:

- every internal link (``href`` or ``src`` to a file of the site, with its ``#fragment``)
  leads to a file that exists and holds that anchor, and no link is a ``mailto:``
  (docutils makes one of any text shaped like ``name@host``);
- every page built from a notebook holds executed cell outputs;
- no page shows a path of the machine that built it (the repository, the Python
  environment or the home directory);
- every name a public module of agentmem exports (``__all__``) has an entry in the API
  reference (``objects.inv``).

Exits with status 1 and one line per problem when a check fails.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import sys
import zlib
from collections.abc import Iterable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

__all__ = ["check_site", "main"]

ROOT = Path(__file__).resolve().parent.parent
_LINK_ATTRIBUTES = {"a": "href", "link": "href", "img": "src", "script": "src"}
_EXTERNAL_SCHEMES = {"http", "https", "data", "javascript"}


class _Page(HTMLParser):
    """The links, anchors and text of one HTML page, and whether it shows cell output."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.anchors: set[str] = set()
        self.outputs = 0
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("id", "name"):
            if values.get(name):
                self.anchors.add(str(values[name]))
        link = values.get(_LINK_ATTRIBUTES.get(tag, ""))
        if link:
            self.links.append(link)
        if "cell_output" in (values.get("class") or "").split():
            self.outputs += 1

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _pages(site: Path) -> dict[Path, _Page]:
    return {
        path: _Page(path.read_text(encoding="utf-8"))
        for path in sorted(site.rglob("*.html"))
        if "_static" not in path.relative_to(site).parts
    }


def _link_problems(site: Path, pages: dict[Path, _Page]) -> Iterator[str]:
    for page_path, page in pages.items():
        where = page_path.relative_to(site)
        for link in page.links:
            parts = urlsplit(link)
            if parts.scheme == "mailto":
                yield f"{where}: a mailto link: {link}"
                continue
            if parts.scheme in _EXTERNAL_SCHEMES or parts.netloc:
                continue
            target = page_path
            if parts.path:
                target = (page_path.parent / unquote(parts.path)).resolve()
                if target.is_dir():
                    target = target / "index.html"
            if not target.is_file():
                yield f"{where}: broken link {link}"
                continue
            fragment = unquote(parts.fragment)
            if fragment and target.suffix == ".html":
                anchors = pages[target].anchors if target in pages else set()
                if fragment not in anchors:
                    yield f"{where}: link {link} names a missing anchor"


def _output_problems(
    site: Path, pages: dict[Path, _Page], notebooks: Iterable[Path]
) -> Iterator[str]:
    for notebook in notebooks:
        built = site / "notebooks" / f"{notebook.stem}.html"
        if built not in pages:
            yield f"notebooks/{notebook.name} has no page in the site"
        elif not pages[built].outputs:
            yield f"{built.relative_to(site)} holds no executed output"


def _machine_paths() -> list[str]:
    paths = {str(ROOT), sys.prefix, os.path.realpath(sys.prefix)}
    home = os.path.expanduser("~")
    if home not in ("", "/", "~"):
        paths.add(home)
    # Only absolute paths below the root say where a machine keeps things.
    return sorted(path for path in paths if path.count("/") > 1)


def _path_problems(site: Path, pages: dict[Path, _Page]) -> Iterator[str]:
    paths = _machine_paths()
    for page_path, page in pages.items():
        text = "".join(page.text)
        for path in paths:
            if path + "/" in text or text.endswith(path):
                yield f"{page_path.relative_to(site)} shows the path {path}"


def _inventory_names(site: Path) -> set[str]:
    """The object names of Sphinx's ``objects.inv`` (four header lines, then zlib)."""
    data = (site / "objects.inv").read_bytes()
    body = data.split(b"\n", 4)[4]
    return {line.split(" ", 1)[0] for line in zlib.decompress(body).decode().splitlines()}


def public_modules() -> Iterator[str]:
    """agentmem's packages, its top-level modules and those of :mod:`agentmem.testing`."""
    import agentmem

    yield "agentmem"
    for info in pkgutil.walk_packages(agentmem.__path__, "agentmem."):
        parts = info.name.split(".")
        if any(part.startswith("_") for part in parts[1:]):
            continue
        if info.ispkg or len(parts) == 2 or parts[1] == "testing":
            yield info.name


def _reference_problems(site: Path) -> Iterator[str]:
    documented = _inventory_names(site)
    last_parts = {entry.rsplit(".", 1)[-1] for entry in documented}
    for module_name in public_modules():
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", ()):
            value = getattr(module, name)
            if inspect.ismodule(value):
                continue
            if inspect.isclass(value) or inspect.isfunction(value):
                found = not documented.isdisjoint(
                    {f"{module_name}.{name}", f"{value.__module__}.{value.__qualname__}"}
                )
            else:
                # A constant keeps no trace of the module defining it: any entry of
                # that name documents it.
                found = name in last_parts
            if not found:
                yield f"{module_name}.{name} is not in the API reference"


def check_site(site: Path, notebooks: Iterable[Path] | None = None) -> list[str]:
    """Every problem found in the site built in ``site`` from the ``notebooks`` (by
    default those of the repository's ``notebooks/``)."""
    site = site.resolve()
    pages = _pages(site)
    if notebooks is None:
        notebooks = sorted((ROOT / "notebooks").glob("*.md"))
    return [
        *_link_problems(site, pages),
        *_output_problems(site, pages, notebooks),
        *_path_problems(site, pages),
        *_reference_problems(site),
    ]


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if len(arguments) != 1:
        print("usage: python -m tests.site_check SITE_DIRECTORY", file=sys.stderr)
        return 2
    site = Path(arguments[0])
    problems = check_site(site)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    print(f"{site}: links, notebook outputs, paths and API reference checked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
