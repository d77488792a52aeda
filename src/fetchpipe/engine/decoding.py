"""Response bodies decoded from their ``Content-Encoding`` within the body cap, while they arrive.

Both transports read a body through :func:`capped_body`: a plain body is counted against the
cap; an encoded one goes through a :class:`BoundedDecoder`, whose layers are the streaming
decompressors below. :func:`content_encodings` checks a response's codings (how many, which),
and :func:`accept_encoding` says what both transports advertise: exactly what is decodable.

One :class:`Decompressor` undoes one coding (gzip, deflate, br or zstd). ``decode(data)``
yields the decoded output of ``data`` in pieces of at most about ``STEP`` bytes and returns only
when no output is held back: the caller (``BoundedDecoder``) counts each piece against the body
cap before the next one is produced, so a bomb is stopped after at most one step past the cap,
whatever its ratio. ``done`` says the stream ended cleanly; a stream that is not done when the
body ends was cut off.

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

No message made here quotes more than a short, escaped piece of a header.
"""

from __future__ import annotations

import functools
import importlib
import sys
import zlib
from collections.abc import Collection, Iterable, Iterator
from typing import Any, Protocol

from fetchpipe._exceptions import TransportError
from fetchpipe._models import ErrorKind
from fetchpipe.engine.security import escaped

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
_ALIASES = {"x-gzip": "gzip"}


# --- which codings are decodable here ---------------------------------------------------------


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


def decodable_encodings() -> tuple[str, ...]:
    """The codings :class:`BoundedDecoder` decodes here: gzip and deflate always, br and zstd
    when their libraries are installed (they are dependencies of fetchpipe). The first call
    imports those libraries."""
    return available()


def accept_encoding() -> str:
    """What both transports advertise in ``Accept-Encoding``: exactly what is decodable."""
    return ", ".join(decodable_encodings())


def content_encodings(
    values: Iterable[str], max_encodings: int, decodable: Collection[str] | None = None
) -> tuple[str, ...]:
    """The codings applied to a body, in the order they were applied (``identity`` dropped).

    ``values`` are all ``Content-Encoding`` header lines. More than ``max_encodings`` stacked
    codings is refused: each layer multiplies what a small body can expand to. A coding we
    cannot decode is refused too, rather than handing compressed bytes back as the body.
    ``decodable`` defaults to :func:`decodable_encodings`: gzip (and x-gzip), deflate, br and
    zstd, all with bounded decoding.
    """
    codings = [
        _ALIASES.get(token, token)
        for value in values
        for token in (part.strip().lower() for part in value.split(","))
        if token and token != "identity"
    ]
    if len(codings) > max_encodings:
        raise TransportError(
            ErrorKind.OTHER,
            f"response has {len(codings)} stacked content encodings "
            f"({escaped(', '.join(codings))}), over max_encodings={max_encodings}; refused "
            "(a decompression bomb guard). HINT: raise SecurityPolicy.max_encodings if this "
            "API really stacks encodings.",
        )
    known = decodable_encodings() if decodable is None else decodable
    for coding in codings:
        if coding not in known:
            raise TransportError(ErrorKind.OTHER, _undecodable(coding, known))
    return tuple(codings)


def _undecodable(coding: str, known: Collection[str]) -> str:
    install = INSTALL.get(coding)
    if install is not None:
        return (
            f"response body is encoded with '{coding}', which needs a library that is not "
            f"installed here (decodable: {', '.join(known)}). HINT: {install}, or send "
            "'Accept-Encoding: gzip' in the request headers."
        )
    return (
        f"response body is encoded with '{escaped(coding)}', which fetchpipe cannot decode "
        f"({', '.join(known)} only). HINT: send 'Accept-Encoding: gzip' or 'identity' in the "
        "request headers."
    )


# --- a body within the cap --------------------------------------------------------------------


class Body(Protocol):
    """A response body being read: ``feed`` each chunk as it arrives, then ``finish``."""

    def feed(self, chunk: bytes) -> None: ...

    def finish(self) -> bytes: ...


def capped_body(
    encodings: Collection[str], length: int | None, max_size: int, max_encodings: int
) -> Body:
    """Where a transport feeds a response body: a plain one, or a :class:`BoundedDecoder` for
    the codings of ``encodings`` (its ``Content-Encoding`` lines), both refusing more than
    ``max_size`` bytes; a ``length`` (its Content-Length) already over the bound is refused
    at once."""
    codings = content_encodings(encodings, max_encodings) if encodings else ()
    if codings:
        decoder = BoundedDecoder(codings, max_size)
        if length is not None:
            decoder.check_length(length)
        return decoder
    if length is not None and length > max_size:
        raise body_too_large(max_size, f"Content-Length is {length}")
    return PlainBody(max_size)


class PlainBody:
    """A body without a coding: its chunks, counted against the cap."""

    __slots__ = ("_max_size", "_parts", "_size")

    def __init__(self, max_size: int) -> None:
        self._max_size = max_size
        self._size = 0
        self._parts: list[bytes] = []

    def feed(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self._max_size:
            raise body_too_large(self._max_size, f"read {self._size} bytes so far")
        self._parts.append(chunk)

    def finish(self) -> bytes:
        return b"".join(self._parts)


class BoundedDecoder:
    """Decodes a body through ``codings`` while it arrives, never holding more than the cap.

    Each coding is undone by a :class:`Decompressor` whose every call produces at most one step
    (64 KiB; up to about 96 KiB for br), and each piece goes straight through the next layer
    and is counted against ``max_size`` before the next one is made. So a few KB of
    gzip-of-gzip, br or zstd that would expand to 1 GB costs no more memory than ``max_size``
    (plus the decoders' windows: 32 KiB for zlib, at most 16 MiB for br and 8 MiB for zstd):
    :class:`TransportError` (BODY_TOO_LARGE) comes as soon as the decoded size passes it.
    :meth:`finish` checks that every layer ended cleanly: a cut-off compressed stream is
    TRUNCATED even when the HTTP framing was complete (aiohttp's own decoder accepts a cut-off
    gzip stream silently). Corrupt data is OTHER, naming the coding.
    """

    def __init__(self, codings: tuple[str, ...], max_size: int) -> None:
        # Decoding undoes the last-applied coding first.
        self._layers = [create(coding) for coding in reversed(codings)]
        self._codings = codings
        self._max_size = max_size
        # The encoded input may not be larger than the decoded cap (plus deflate's worst-case
        # overhead): a body that expands to nothing must not stream forever either.
        self._max_raw = max_size + max_size // 256 + STEP
        self._raw = 0
        self._size = 0
        self._parts: list[bytes] = []

    def check_length(self, length: int) -> None:
        """Refuse at once an encoded body whose Content-Length is already over the bound."""
        if length > self._max_raw:
            raise self._too_large(f"the encoded body's Content-Length is {length}")

    def feed(self, chunk: bytes) -> None:
        """Decode one chunk of the encoded body."""
        self._raw += len(chunk)
        if self._raw > self._max_raw:
            raise self._too_large(f"the encoded body alone is over {self._max_raw} bytes")
        if chunk:
            self._push(0, chunk)

    def finish(self) -> bytes:
        """The decoded body; TRUNCATED when a layer stopped mid-stream."""
        if self._raw:
            for layer in self._layers:
                if not layer.done:
                    raise TransportError(
                        ErrorKind.TRUNCATED,
                        f"the {layer.coding} stream of the response body ends early "
                        f"(after {self._raw} encoded bytes): the body is incomplete.",
                    )
        return b"".join(self._parts)

    def _push(self, index: int, data: bytes) -> None:
        if index == len(self._layers):
            self._size += len(data)
            if self._size > self._max_size:
                raise self._too_large(f"decoded {self._size} bytes so far")
            self._parts.append(data)
            return
        for out in self._layers[index].decode(data):
            self._push(index + 1, out)

    def _too_large(self, detail: str) -> TransportError:
        return body_too_large(
            self._max_size, f"{detail}; Content-Encoding {', '.join(self._codings)}"
        )


def body_too_large(max_body_size: int, detail: str) -> TransportError:
    return TransportError(
        ErrorKind.BODY_TOO_LARGE,
        f"response body is over max_body_size ({max_body_size} bytes; {detail}). "
        "HINT: raise Limits.max_body_size if this API really sends bodies this large.",
    )


# --- the decompressors ------------------------------------------------------------------------


class Decompressor(Protocol):
    """Undoes one coding of a body, in bounded steps (see the module docstring)."""

    coding: str
    done: bool

    def decode(self, data: bytes) -> Iterator[bytes]: ...


def create(coding: str) -> Decompressor:
    """A fresh decompressor for ``coding`` (one of :func:`available`)."""
    if coding == "br":
        return BrotliDecompressor(brotli_module())
    if coding == "zstd":
        return ZstdDecompressor(zstd_module())
    return ZlibDecompressor(coding)


def invalid(coding: str, detail: str) -> TransportError:
    """The error for a body that is not valid ``coding`` data."""
    return TransportError(
        ErrorKind.OTHER, f"the response body is not valid {coding} data ({detail})."
    )


class _Members:
    """A coding whose body may be several concatenated members (gzip and deflate) or frames
    (zstd), each undone by a new decompression object of the library: ``_start`` makes one,
    ``_rest`` says what of the input it holds back after a call."""

    __slots__ = ("coding", "done", "error", "members", "obj")

    def __init__(self, coding: str, error: type[Exception]) -> None:
        self.coding = coding
        self.error = error
        self.obj: Any = None  # created on the first byte of each member
        self.members = 0
        self.done = False  # the current member ended cleanly

    def _start(self, first: int) -> Any:
        raise NotImplementedError

    def _rest(self, out: bytes) -> bytes | None:
        """The input still to decode after a call that gave ``out`` (None: all input used and
        no output held back, wait for more)."""
        raise NotImplementedError

    def _detail(self, exc: Exception) -> str:
        return str(exc)

    def decode(self, data: bytes) -> Iterator[bytes]:
        while True:
            if self.obj is None or self.done:
                if not data:
                    return
                self.members += 1
                if self.members > MAX_MEMBERS:
                    what = "frames" if self.coding == "zstd" else "members"
                    raise TransportError(
                        ErrorKind.OTHER,
                        f"{self.coding} body has more than {MAX_MEMBERS} concatenated {what}; "
                        "refused.",
                    )
                self.obj = self._start(data[0])
                self.done = False
            try:
                out = self.obj.decompress(data, STEP)
            except self.error as exc:
                raise invalid(self.coding, self._detail(exc)) from None
            if out:
                yield out
            if self.obj.eof:
                self.done = True
                data = self.obj.unused_data
                if not data:
                    return
                continue  # another member follows
            rest = self._rest(out)
            if rest is None:
                return
            data = rest


class ZlibDecompressor(_Members):
    """gzip or deflate, concatenated members included."""

    __slots__ = ()

    def __init__(self, coding: str) -> None:
        super().__init__(coding, zlib.error)

    def _start(self, first: int) -> Any:
        """Deflate bodies come with a zlib header (RFC 9110) or, from some servers, raw: the
        low nibble 8 of the first byte says zlib."""
        if self.coding == "gzip":
            wbits = 16 + zlib.MAX_WBITS
        else:
            wbits = zlib.MAX_WBITS if first & 0x0F == 8 else -zlib.MAX_WBITS
        return zlib.decompressobj(wbits=wbits)

    def _rest(self, out: bytes) -> bytes | None:
        tail: bytes = self.obj.unconsumed_tail
        return None if not tail and len(out) < STEP else tail


class ZstdDecompressor(_Members):
    """zstd, concatenated frames included (RFC 8878)."""

    __slots__ = ("module",)

    def __init__(self, module: Any) -> None:
        super().__init__("zstd", module.ZstdError)
        self.module = module

    def _start(self, first: int) -> Any:
        window = self.module.DecompressionParameter.window_log_max
        return self.module.ZstdDecompressor(options={window: ZSTD_WINDOW_LOG_MAX})

    def _rest(self, out: bytes) -> bytes | None:
        return None if self.obj.needs_input else b""

    def _detail(self, exc: Exception) -> str:
        message = str(exc)
        if "too much memory" in message:
            return (
                f"{message}: the frame needs a window over {1 << ZSTD_WINDOW_LOG_MAX >> 20} MiB, "
                "more than RFC 9659 allows in HTTP"
            )
        return message


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
