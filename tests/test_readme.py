"""The README tells a newcomer the truth: what to install, and code that runs.

The distribution is installed by the name of ``pyproject.toml``, which differs from the
import name (``agentmem`` on PyPI is another project), so every ``pip install`` line of
the README and of the documentation must name it, with extras it declares.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from agentmem.errors import MissingExtraError

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
DISTRIBUTION = PROJECT["name"]
EXTRAS = set(PROJECT["optional-dependencies"])
README = (ROOT / "README.md").read_text(encoding="utf-8")
PAGES = [
    pytest.param(page, id=str(page.relative_to(ROOT)))
    for page in [
        ROOT / "README.md",
        *sorted((ROOT / "docs").rglob("*.md")),
        *sorted((ROOT / "notebooks").glob("*.md")),
    ]
]
# "pip install" and what follows it on the line, up to a comment or the end of code.
_PIP_INSTALL = re.compile(r"pip install ([^#`\n]+)")
_REQUIREMENT = re.compile(r"([A-Za-z0-9._-]+)(?:\[([A-Za-z0-9_,-]+)\])?")


def extras_of(named: str) -> set[str]:
    """The extras of ``a,b`` (``...`` stands for any extra in prose)."""
    return {extra for extra in named.split(",") if extra and extra != "..."}


def installed_requirements(text: str) -> list[str]:
    """The requirements named by each ``pip install`` of ``text`` (options left out)."""
    found = []
    for arguments in _PIP_INSTALL.findall(text):
        found.extend(word for word in shlex.split(arguments) if not word.startswith("-"))
    return found


def test_the_distribution_name_is_not_the_import_name() -> None:
    # agentmem on PyPI is an unrelated project: installing it would install that one.
    assert DISTRIBUTION != "agentmem"
    assert DISTRIBUTION == "agentmem-services"


def test_the_readme_installs_the_project_by_its_distribution_name() -> None:
    requirements = installed_requirements(README)
    assert requirements, "the README shows no pip install line"
    for requirement in requirements:
        match = _REQUIREMENT.fullmatch(requirement)
        assert match is not None and match.group(1) == DISTRIBUTION, requirement
        assert extras_of(match.group(2) or "") <= EXTRAS, requirement


@pytest.mark.parametrize("page", PAGES)
def test_every_page_installs_the_project_by_its_distribution_name(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    for requirement in installed_requirements(text):
        name, _, extras = requirement.partition("[")
        if name.startswith("agentmem"):
            assert name == DISTRIBUTION, requirement
            assert extras_of(extras.rstrip("]")) <= EXTRAS, requirement
    # Extras named in prose, as `agentmem-services[x]`, exist too.
    assert not re.search(r"\bagentmem\[", text), "an extra of the import name"
    for extras in re.findall(rf"{re.escape(DISTRIBUTION)}\[([A-Za-z0-9_,.-]+)\]", text):
        assert extras_of(extras) <= EXTRAS, extras


def test_a_missing_extra_names_the_distribution_to_install() -> None:
    message = str(MissingExtraError("RedisMemoryService", "redis"))
    assert f"pip install '{DISTRIBUTION}[redis]'" in message


def test_the_readme_commands_are_make_targets() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    commands = re.findall(r"^make (\w+)", README, flags=re.MULTILINE)
    assert {"docs", "test", "lab"} <= set(commands)
    for command in commands:
        assert re.search(rf"^{command}:", makefile, flags=re.MULTILINE), command


def test_the_readme_example_runs() -> None:
    [example] = re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("MEMORY_")
    }
    result = subprocess.run(
        [sys.executable, "-c", example],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env=environment,
        cwd=ROOT,
    )
    score, text = result.stdout.strip().split(" ", 1)
    assert float(score) > 0 and text == "I moved to Lisbon"
