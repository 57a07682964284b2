"""Progress of long row-by-row work (reading and checking a large table, tokenizing, eval and predict).

On a terminal, rich's bar. Elsewhere (a log file, CI, a batch job) that bar prints nothing, so a long job looked
hung: there one log line every ``interval`` seconds says the rows done, rows/s and the time left.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import IO, Any

from rich.console import Console
from rich.progress import MofNCompleteColumn, Progress

log = logging.getLogger(__name__)
INTERVAL_S = 10.0  # between log lines off a terminal: often enough to see a job move, rarely enough to read the log


def duration(seconds: float) -> str:
    """``seconds`` as ``1 h 02 m``, ``3 m 05 s`` or ``12 s``."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} m"
    return f"{minutes} m {secs:02d} s" if minutes else f"{secs} s"


class RowProgress:
    """``with RowProgress(total, "predicting", enabled=…) as progress: … progress.advance(rows)``; ``unit`` names
    what is counted where rows are not known yet (``MB`` of a file being parsed)."""

    def __init__(self, total: int, label: str, enabled: bool = True, interval: float | None = None,
                 stream: IO[str] | None = None, clock: Callable[[], float] = time.monotonic,
                 unit: str = "rows") -> None:
        stream = stream if stream is not None else sys.stdout  # looked up now: redirect_stdout and pytest swap it
        on_terminal = enabled and stream.isatty()
        self.total, self.label, self.clock, self.unit = total, label, clock, unit
        self.interval = INTERVAL_S if interval is None else interval
        self.logs = enabled and not on_terminal
        self.bar = Progress(*Progress.get_default_columns(), MofNCompleteColumn(), console=Console(file=stream),
                            disable=not on_terminal, transient=True)
        self.done, self.lines = 0, 0

    def __enter__(self) -> RowProgress:
        self.bar.__enter__()
        self.task = self.bar.add_task(self.label, total=self.total)
        self.started = self.last = self.clock()
        return self

    def advance(self, rows: int) -> None:
        self.done += rows
        self.bar.advance(self.task, rows)
        now = self.clock()
        if self.logs and self.done < self.total and now - self.last >= self.interval:
            self.last, self.lines = now, self.lines + 1
            log.info(self.status(now - self.started))

    def status(self, elapsed: float) -> str:
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = duration((self.total - self.done) / rate) if rate > 0 else "unknown"
        return (f"{self.label}: {self.done:,}/{self.total:,} {self.unit} ({self.done / max(self.total, 1):.0%}), "
                f"{rate:,.1f} {self.unit}/s, ETA {eta}")

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)
        if self.lines and exc[0] is None:  # a job long enough to report its progress also reports its end
            log.info("%s: %s %s in %s", self.label, f"{self.done:,}", self.unit, duration(self.clock() - self.started))
