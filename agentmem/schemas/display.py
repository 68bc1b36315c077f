"""How agentmem's results display in Jupyter: tables in HTML and in markdown.

Results are lists (hits, memories, messages, sessions, state rounds) and single objects;
Jupyter shows their ``_repr_html_`` (and front ends without HTML their
``_repr_markdown_``). Both come from one :class:`Table`, which escapes every value
exactly once for the format it goes into: user text always shows as typed, so
``**not bold**`` stays literal, ``<b>`` is text and an id such as ``id<with>&chars``
shows its own characters. Tables carry the classes MathJax skips, so dollar signs in
user text never turn into formulas.
"""

from __future__ import annotations

import dataclasses
import html
import re
from abc import ABCMeta, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, TypeVar

__all__ = ["Column", "DisplayList", "Table", "escape_markdown", "format_time"]

T = TypeVar("T")

# Markdown gives every ASCII punctuation character a backslash escape (CommonMark 2.4),
# which turns off emphasis, links, code spans, HTML, entities and math alike.
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
# MathJax, as configured by JupyterLab, classic Jupyter and Sphinx, skips these classes.
_NO_MATH = "tex2jax_ignore mathjax_ignore"


def escape_markdown(text: str) -> str:
    """``text`` escaped so that markdown shows it as typed, on one line."""
    return _PUNCTUATION.sub(r"\\\1", text).replace("\r\n", "\n").replace("\n", "<br>")


def _escape_html(text: str) -> str:
    return html.escape(text).replace("\r\n", "\n").replace("\n", "<br>")


def format_time(value: datetime) -> str:
    """A time as shown in tables: UTC, to the second."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True, slots=True)
class Column:
    """A column of a :class:`Table`.

    ``kind`` says how its values show: ``"text"`` as prose, ``"code"`` as an id in code
    font, ``"number"`` right-aligned.
    """

    title: str
    kind: Literal["text", "code", "number"] = "text"

    @property
    def align(self) -> str:
        return "right" if self.kind == "number" else "left"


@dataclass(frozen=True, slots=True)
class Table:
    """Rows of plain strings under titled columns, rendered as HTML or markdown.

    ``empty`` is what shows instead of a table without rows (``"No hits."``), and
    ``caption`` a line above the table; both are escaped like the values. In Jupyter a
    table shows itself.
    """

    columns: Sequence[Column]
    rows: Sequence[Sequence[str]]
    empty: str = "Nothing to show."
    caption: str | None = None

    def html(self) -> str:
        """The table as an HTML fragment."""
        lead = f"<p>{_escape_html(self.caption)}</p>" if self.caption else ""
        if not self.rows:
            return f'<div class="{_NO_MATH}">{lead}<p><em>{_escape_html(self.empty)}</em></p></div>'
        head = "".join(
            f'<th style="text-align: {column.align}">{_escape_html(column.title)}</th>'
            for column in self.columns
        )
        body = "".join(
            "<tr>"
            + "".join(
                f'<td style="text-align: {column.align}">{self._html_cell(column, value)}</td>'
                for column, value in zip(self.columns, row, strict=True)
            )
            + "</tr>"
            for row in self.rows
        )
        return (
            f'<div class="{_NO_MATH}">{lead}<table class="agentmem-table">'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
        )

    def markdown(self) -> str:
        """The table as GitHub-flavoured markdown."""
        lead = f"{escape_markdown(self.caption)}\n\n" if self.caption else ""
        if not self.rows:
            return f"{lead}*{escape_markdown(self.empty)}*"
        rule = {"left": ":---", "right": "---:"}
        lines = [
            "| " + " | ".join(escape_markdown(column.title) for column in self.columns) + " |",
            "| " + " | ".join(rule[column.align] for column in self.columns) + " |",
        ]
        lines.extend(
            "| "
            + " | ".join(
                self._markdown_cell(column, value)
                for column, value in zip(self.columns, row, strict=True)
            )
            + " |"
            for row in self.rows
        )
        return lead + "\n".join(lines)

    def numbered(self, title: str = "#") -> Table:
        """The table with a first column numbering its rows from 1."""
        return dataclasses.replace(
            self,
            columns=[Column(title, "number"), *self.columns],
            rows=[[str(number), *row] for number, row in enumerate(self.rows, start=1)],
        )

    def _repr_html_(self) -> str:
        return self.html()

    def _repr_markdown_(self) -> str:
        return self.markdown()

    @staticmethod
    def _html_cell(column: Column, value: str) -> str:
        escaped = _escape_html(value)
        return f"<code>{escaped}</code>" if column.kind == "code" and value else escaped

    @staticmethod
    def _markdown_cell(column: Column, value: str) -> str:
        # Inline HTML rather than a code span: markdown does not decode escapes inside
        # backticks, and a backtick in the value would end the span.
        escaped = escape_markdown(value)
        return f"<code>{escaped}</code>" if column.kind == "code" and value else escaped


class DisplayList(list[T], metaclass=ABCMeta):
    """A list of results that displays as a table in Jupyter; otherwise a plain list.

    A subclass says how its items make a :meth:`table`.
    """

    @abstractmethod
    def table(self) -> Table:
        """The items as a :class:`Table`."""

    def _repr_html_(self) -> str:
        return self.table().html()

    def _repr_markdown_(self) -> str:
        return self.table().markdown()
