"""``with`` support for the writers that have ``open`` and ``close`` (sinks, DuckDB stores)."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class OpenClose:
    """A writer opened by ``open`` and closed by ``close``; ``with`` does both."""

    def open(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
