"""Progress on stderr: a rich progress bar on a terminal, plain periodic lines otherwise."""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import IO, TYPE_CHECKING, Protocol, Self

from fetchpipe._models import Result
from fetchpipe.cli.plain_console import Output

if TYPE_CHECKING:  # rich is imported only for a terminal
    from rich.console import Console
    from rich.progress import TaskID


class Reporter(Protocol):
    """Receives every result as it arrives; used as a context manager around the run."""

    def advance(self, result: Result) -> None: ...

    def advance_by(self, done: int, ok: int) -> None:
        """Count ``done`` results at once, ``ok`` of them successful (a finished batch)."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class _Counts:
    def __init__(self, total: int | None) -> None:
        self.total = total
        self.done = 0
        self.ok = 0
        self.started = time.monotonic()

    def add(self, result: Result) -> None:
        self.done += 1
        if result.ok:
            self.ok += 1

    def add_many(self, done: int, ok: int) -> None:
        self.done += done
        self.ok += ok

    @property
    def failed(self) -> int:
        return self.done - self.ok

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        of = f"/{self.total}" if self.total is not None else ""
        return (
            f"fetchpipe: {self.done}{of} done, {self.ok} ok, {self.failed} failed, {rate:.1f} req/s"
        )


class PlainReporter:
    """Writes a status line to ``stream`` every ``interval`` seconds, from a small thread."""

    def __init__(self, stream: IO[str], total: int | None, *, interval: float = 2.0) -> None:
        self._stream = stream
        self._counts = _Counts(total)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, name="fetchpipe-progress", daemon=True)

    def advance(self, result: Result) -> None:
        self._counts.add(result)

    def advance_by(self, done: int, ok: int) -> None:
        self._counts.add_many(done, ok)

    def _tick(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                # One write of the whole line: a log line from another thread never cuts it.
                self._stream.write(self._counts.line() + "\n")
                self._stream.flush()
            except (OSError, ValueError):
                return

    def __enter__(self) -> Self:
        self._counts.started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()


class RichReporter:
    """A rich progress bar; the bar is updated at most every ``refresh`` seconds."""

    def __init__(self, console: Console, total: int | None, *, refresh: float = 0.1) -> None:
        # lazy: start-up time; rich is loaded only where a terminal shows its bar
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._counts = _Counts(total)
        self._refresh = refresh
        self._last = 0.0
        self._progress = Progress(
            TextColumn("[bold]fetching"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("[green]{task.fields[ok]} ok[/green] [red]{task.fields[failed]} failed"),
            TextColumn("{task.fields[rate]} req/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        self._task: TaskID | None = None

    def advance(self, result: Result) -> None:
        self._counts.add(result)
        now = time.monotonic()
        if now - self._last >= self._refresh:
            self._last = now
            self._update()

    def advance_by(self, done: int, ok: int) -> None:
        self._counts.add_many(done, ok)
        self._last = time.monotonic()
        self._update()

    def _update(self) -> None:
        if self._task is None:
            return
        counts = self._counts
        elapsed = time.monotonic() - counts.started
        rate = f"{counts.done / elapsed:.1f}" if elapsed > 0 else "-"
        self._progress.update(
            self._task, completed=counts.done, ok=counts.ok, failed=counts.failed, rate=rate
        )

    def __enter__(self) -> Self:
        self._counts.started = time.monotonic()
        self._task = self._progress.add_task(
            "fetch", total=self._counts.total, ok=0, failed=0, rate="-"
        )
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._update()
        self._progress.stop()


def reporter_for(console: Output, total: int | None) -> Reporter:
    """A progress bar when ``console`` is a terminal, plain periodic lines otherwise."""
    if console.is_terminal:
        from rich.console import Console  # lazy: start-up time (see plain_console)

        if isinstance(console, Console):
            return RichReporter(console, total)
    return PlainReporter(console.file, total)
