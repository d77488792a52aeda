"""Streaming decompressors of the content codings, each giving its output in bounded steps.

One :class:`Decompressor` undoes one coding of a response body (gzip, deflate, br or zstd).
``decode(data)`` yields the decoded output of ``data`` in pieces of at most about
``STEP`` bytes and returns only when no output is held back: the caller (``BoundedDecoder``)
counts each piece against the body cap before the next one is produced, so a bomb is stopped
after at most one step past the cap, whatever its ratio. ``done`` says the stream ended
cleanly; a stream that is not done when the body ends was cut off.

Each coding uses a well-kept library through its incremental API, with the output limit of one
call set to ``STEP``:

* gzip and deflate: the standard ``zlib`` (``decompress(data, max_length)``).
* br: Brotli >= 1.2 (brotlicffi >= 1.2 where CPython's extension is not used), whose
  ``Decompressor.process(data, output_buffer_limit=...)`` stops growing its output once the
  limit is reached (the C extension's buffer grows in blocks, so a piece may be up to about
  1.5 ``STEP``); ``can_accept_more_data()`` says when the held-back input is used up. Older
  versions have no output limit (CVE-2025-6176) and are treated as missing. The decoder's own
  memory is its window: at most 16 MiB (RFC 7932; the large-window extension is off).
* zstd: ``compression.zstd`` (Python 3.14+) or its backport ``backports.zstd``, with
  ``ZstdDecompressor.decompress(data, max_length)`` and ``needs_input``. Frames needing a
  window over 8 MiB are refused (``window_log_max`` 23): encoders must not use more in HTTP
  (RFC 9659), and the library's default would let a small frame claim 128 MiB of memory.

These are the libraries aiohttp itself uses for br and zstd. This module imports them on first
use (:func:`available`, when a transport is built), not when it is imported (aiohttp, though,
imports them when it is itself imported, if they are installed). A missing or too old one makes
its coding undecodable, and then it is not advertised in ``Accept-Encoding``.
"""

from __future__ import annotations

import functools
import importlib
import sys
import zlib
from collections.abc import Iterator
from typing import Any, Protocol

from fetchpipe._exceptions import TransportError
from fetchpipe._models import ErrorKind

STEP = 65536  # the output limit of one decompression call
MAX_MEMBERS = 1024  # concatenated gzip members, deflate streams or zstd frames in one layer
ZSTD_WINDOW_LOG_MAX = 23  # 8 MiB: the most RFC 9659 lets a zstd encoder use in HTTP
ALWAYS = ("gzip", "deflate")  # decodable with the standard library alone
OPTIONAL = ("br", "zstd")
# What to install when a coding cannot be decoded here.
INSTALL = {
    "br": "pip install 'brotli>=1.2'",
    "zstd": "pip install 'backports.zstd>=1.0'",
}


class Decompressor(Protocol):
    """Undoes one coding of a body, in bounded steps (see the module docstring)."""

    coding: str
    done: bool

    def decode(self, data: bytes) -> Iterator[bytes]: ...


# --- which libraries are here -----------------------------------------------------------------


def _import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


@functools.cache
def brotli_module() -> Any:
    """The Brotli binding with an output limit (Brotli or brotlicffi >= 1.2), or None."""
    for name in ("brotli", "brotlicffi"):
        module = _import(name)
        decompressor = getattr(module, "Decompressor", None)
        if decompressor is not None and hasattr(decompressor, "can_accept_more_data"):
            return module
    return None


@functools.cache
def zstd_module() -> Any:
    """``compression.zstd`` (Python 3.14+) or ``backports.zstd``, or None."""
    if sys.version_info >= (3, 14):
        module = _import("compression.zstd")
        if module is not None:
            return module
    return _import("backports.zstd")


@functools.cache
def available() -> tuple[str, ...]:
    """The codings this installation decodes, in the order they are advertised."""
    found = [brotli_module() is not None, zstd_module() is not None]
    return ALWAYS + tuple(coding for coding, ok in zip(OPTIONAL, found, strict=True) if ok)


def create(coding: str) -> Decompressor:
    """A fresh decompressor for ``coding`` (one of :func:`available`)."""
    if coding == "br":
        return BrotliDecompressor(brotli_module())
    if coding == "zstd":
        return ZstdDecompressor(zstd_module())
    return ZlibDecompressor(coding)


# --- the decompressors -----------------------------------------------------------------------


def invalid(coding: str, detail: str) -> TransportError:
    """The error for a body that is not valid ``coding`` data."""
    return TransportError(
        ErrorKind.OTHER, f"the response body is not valid {coding} data ({detail})."
    )


def _count_member(coding: str, members: int) -> int:
    members += 1
    if members > MAX_MEMBERS:
        what = "frames" if coding == "zstd" else "members"
        raise TransportError(
            ErrorKind.OTHER,
            f"{coding} body has more than {MAX_MEMBERS} concatenated {what}; refused.",
        )
    return members


class ZlibDecompressor:
    """gzip or deflate, concatenated members included (a new ``zlib`` object for each)."""

    __slots__ = ("coding", "done", "members", "obj")

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self.obj: Any = None  # created on the first byte: deflate sniffs its header
        self.members = 0
        self.done = False  # the current member ended cleanly

    def _start(self, first: int) -> None:
        """New decompressor for the next member. Deflate bodies come with a zlib header
        (RFC 9110) or, from some servers, raw: the low nibble 8 of the first byte says zlib."""
        self.members = _count_member(self.coding, self.members)
        if self.coding == "gzip":
            wbits = 16 + zlib.MAX_WBITS
        else:
            wbits = zlib.MAX_WBITS if first & 0x0F == 8 else -zlib.MAX_WBITS
        self.obj = zlib.decompressobj(wbits=wbits)
        self.done = False

    def decode(self, data: bytes) -> Iterator[bytes]:
        while True:
            if self.obj is None or self.done:
                if not data:
                    return
                self._start(data[0])
            try:
                out = self.obj.decompress(data, STEP)
            except zlib.error as exc:
                raise invalid(self.coding, str(exc)) from None
            if out:
                yield out
            if self.obj.eof:
                self.done = True
                data = self.obj.unused_data
                if not data:
                    return
                continue  # another member follows
            data = self.obj.unconsumed_tail
            if not data and len(out) < STEP:
                return  # all input used and no output held back: wait for more


class BrotliDecompressor:
    """br: one stream (brotli has no members); bytes after its end are an error."""

    __slots__ = ("coding", "done", "error", "obj")

    def __init__(self, module: Any) -> None:
        self.coding = "br"
        self.obj = module.Decompressor()
        self.error: type[Exception] = module.error
        self.done = False

    def decode(self, data: bytes) -> Iterator[bytes]:
        if self.done:
            if data:
                raise invalid("br", "data after the end of the stream")
            return
        obj = self.obj
        while True:
            try:
                out = obj.process(data, output_buffer_limit=STEP)
            except self.error as exc:
                raise invalid("br", str(exc) or type(exc).__name__) from None
            data = b""  # the rest of the input, if any, is held by the decoder
            if out:
                yield out
            if obj.is_finished():
                self.done = True
                return
            if not out:
                if obj.can_accept_more_data():
                    return  # all input used and no output held back: wait for more
                # Held-back input with no output would call process() forever.
                raise invalid("br", "the decoder stopped making progress")


class ZstdDecompressor:
    """zstd, concatenated frames included (RFC 8878: a new decompressor for each)."""

    __slots__ = ("coding", "done", "frames", "module", "obj")

    def __init__(self, module: Any) -> None:
        self.coding = "zstd"
        self.module = module
        self.obj: Any = None
        self.frames = 0
        self.done = False  # the current frame ended cleanly

    def _start(self) -> None:
        self.frames = _count_member("zstd", self.frames)
        window = self.module.DecompressionParameter.window_log_max
        self.obj = self.module.ZstdDecompressor(options={window: ZSTD_WINDOW_LOG_MAX})
        self.done = False

    def decode(self, data: bytes) -> Iterator[bytes]:
        while True:
            if self.obj is None or self.done:
                if not data:
                    return
                self._start()
            try:
                out = self.obj.decompress(data, STEP)
            except self.module.ZstdError as exc:
                raise invalid("zstd", _zstd_detail(str(exc))) from None
            if out:
                yield out
            if self.obj.eof:
                self.done = True
                data = self.obj.unused_data
                if not data:
                    return
                continue  # another frame follows
            if self.obj.needs_input:
                return  # all input used and no output held back: wait for more
            data = b""


def _zstd_detail(message: str) -> str:
    if "too much memory" in message:
        return (
            f"{message}: the frame needs a window over {1 << ZSTD_WINDOW_LOG_MAX >> 20} MiB, "
            "more than RFC 9659 allows in HTTP"
        )
    return message
