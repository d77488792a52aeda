"""JSON Lines sink: one record per line, appended to the file."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

from fetchpipe._exceptions import SinkError
from fetchpipe._models import Result
from fetchpipe.sinks import encode_record


class JsonlSink:
    """Appends one JSON object per result to ``path`` (created when missing)."""

    def __init__(self, path: str | Path, *, buffer_size: int = 1024 * 1024) -> None:
        self.path = Path(path)
        self.written = 0
        self._buffer_size = buffer_size
        self._file: BinaryIO | None = None

    def open(self) -> None:
        try:
            self._file = open(self.path, "ab", buffering=self._buffer_size)  # noqa: SIM115
        except OSError as exc:
            raise SinkError(
                f"cannot open {str(self.path)!r} for writing: {exc.strerror or exc}. "
                "HINT: check that the directory exists and is writable"
            ) from exc

    def write(self, result: Result) -> None:
        if self._file is None:
            raise SinkError(f"{str(self.path)!r} is not open. HINT: call open() first")
        try:
            self._file.write(encode_record(result))
        except OSError as exc:
            raise SinkError(f"cannot write to {str(self.path)!r}: {exc.strerror or exc}") from exc
        self.written += 1

    def close(self) -> None:
        file, self._file = self._file, None
        if file is None:
            return
        try:
            file.close()
        except OSError as exc:
            raise SinkError(f"cannot write to {str(self.path)!r}: {exc.strerror or exc}") from exc

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
