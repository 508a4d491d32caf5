"""A small table type rendered to both HTML and Markdown."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from shiftlab.evaluate.significance import PairedDifference


def fmt(value: Any, digits: int = 3) -> str:
    """Numbers to fixed decimals, None to an em dash."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{round(value, digits) + 0.0:.{digits}f}"  # + 0.0 turns -0.0 into 0.0
    return str(value)


def anchor(title: str) -> str:
    """The HTML id of a section's heading: its title in lower case, runs of other characters
    than letters and digits as one hyphen (``Every predictor: ID and OOD`` ->
    ``every-predictor-id-and-ood``)."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "section"


@dataclass
class Table:
    """Title, header and rows of cell strings; ``bold`` marks (row, column) cells."""

    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""
    bold: set[tuple[int, int]] = field(default_factory=set)

    def to_markdown(self) -> str:
        """GitHub-flavoured Markdown."""
        lines = [f"### {self.title}", ""]
        if self.note:
            lines += [self.note, ""]
        lines.append("| " + " | ".join(self.header) + " |")
        lines.append(
            "|" + "|".join("---" if i == 0 else "---:" for i in range(len(self.header))) + "|"
        )
        for i, row in enumerate(self.rows):
            cells = [f"**{c}**" if (i, j) in self.bold else c for j, c in enumerate(row)]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def to_html(self) -> str:
        """An HTML table with a heading."""
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.header)
        body = []
        for i, row in enumerate(self.rows):
            cells = []
            for j, c in enumerate(row):
                text = html.escape(c)
                cells.append(
                    f"<td><b>{text}</b></td>" if (i, j) in self.bold else f"<td>{text}</td>"
                )
            body.append("<tr>" + "".join(cells) + "</tr>")
        note = f"<p class='note'>{html.escape(self.note)}</p>" if self.note else ""
        return (
            f"<h2 id='{anchor(self.title)}'>{html.escape(self.title)}</h2>{note}"
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        )


def bold_best(
    rows: Sequence[Sequence[Any]], columns: Sequence[int], better: Callable[[float, float], bool]
) -> set[tuple[int, int]]:
    """Cells holding the best value of each column, compared as displayed (ties all bold)."""
    marked = set()
    for j in columns:
        values = [(i, round(r[j], 3)) for i, r in enumerate(rows) if isinstance(r[j], float)]
        if not values:
            continue
        best = values[0][1]
        for _, v in values:
            if better(v, best):
                best = v
        marked |= {(i, j) for i, v in values if v == best}
    return marked


def fmt_interval(value: float | None, ci: Sequence[float] | None) -> str:
    """``0.737 [0.714, 0.760]``; the value alone without an interval."""
    if value is None or ci is None:
        return fmt(value)
    return f"{fmt(float(value))} [{fmt(float(ci[0]))}, {fmt(float(ci[1]))}]"


def _signed(value: float) -> str:
    return f"{round(value, 3) + 0.0:+.3f}"  # + 0.0 turns -0.0 into 0.0


def fmt_difference(diff: PairedDifference | None, mark: bool = True) -> str:
    """``+0.031 [+0.012, +0.050] *``: the difference, its interval, and ``*`` where the interval
    excludes zero."""
    if diff is None:
        return "—"
    text = f"{_signed(diff.difference)} [{_signed(diff.low)}, {_signed(diff.high)}]"
    return text + (" *" if mark and diff.excludes_zero else "")


def fmt_pvalue(p: float) -> str:
    """A p-value to three decimals, ``<0.001`` below that."""
    return "<0.001" if p < 0.001 else f"{p:.3f}"
