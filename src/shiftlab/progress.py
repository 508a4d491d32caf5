"""Progress bars with throughput for long work (encoding, training)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from shiftlab.runtime import console, log


class RateColumn(ProgressColumn):
    """Items per second since the task started."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        rate = task.completed / elapsed if elapsed > 0 else 0.0
        return Text(f"{rate:,.1f} {self.unit}/s", style="cyan")


@contextmanager
def progress(description: str, total: int, unit: str = "samples") -> Iterator[Callable[..., None]]:
    """Show a bar with items per second; yield ``advance(n, **fields)``.

    On a terminal the bar is live; elsewhere (CI, logs) one summary line is printed at the end.
    Extra fields (e.g. ``loss=0.41``) are shown after the description.
    """
    start = time.perf_counter()
    done = 0
    live = console.is_terminal
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(unit),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
        transient=False,
        disable=not live,
    )
    with bar:
        task = bar.add_task(escape(description), total=total, status="")

        def advance(n: int, **fields: float) -> None:
            nonlocal done
            done += n
            status = " ".join(f"{k} {v:.4g}" for k, v in fields.items())
            bar.update(task, advance=n, status=status)

        yield advance
    if not live:
        seconds = time.perf_counter() - start
        rate = done / seconds if seconds > 0 else float("inf")
        log(f"{escape(description)}: {done:,} {unit} in {seconds:.1f} s ({rate:,.1f} {unit}/s)")
