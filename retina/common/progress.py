"""Progress bars and closing summary lines for long jobs (quiet on non-zero distributed ranks)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True, highlight=False)


class _Bar:
    def __init__(self, progress: Progress | None, task: int | None):
        self._progress, self._task = progress, task
        self.start = time.perf_counter()
        self.count = 0

    def advance(self, n: int = 1, **status: object) -> None:
        self.count += n
        if self._progress is not None:
            text = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in status.items())
            self._progress.update(self._task, advance=n, status=text)

    def note(self, line: str) -> None:
        """A line printed above the bar (a validation score, say), kept when the bar moves on."""
        if self._progress is not None:
            self._progress.console.print(line, markup=False, soft_wrap=True)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start


@contextmanager
def progress_bar(total: int | None, description: str, enabled: bool = True) -> Iterator[_Bar]:
    """A rich progress bar; ``bar.advance(n, loss=...)`` shows the latest values beside it."""
    if not enabled:
        yield _Bar(None, None)
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn(), TextColumn("{task.fields[status]}"),
        console=console, transient=False,
    )
    with progress:
        task = progress.add_task(description, total=total, status="")
        try:
            yield _Bar(progress, task)
        except BaseException:
            # A failed job's "error: ..." line must stand alone on stderr: drop the bar instead of printing it.
            progress.live.transient = True
            raise


def summary(line: str, enabled: bool = True) -> None:
    """The one line every long job ends with (goes to stdout so scripts can capture it)."""
    if enabled:
        print(line, flush=True)
