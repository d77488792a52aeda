"""Response headers as pyreqwest hands them over: :class:`LazyHeaders` for the result, and the
few the fast transport reads itself (:func:`header`, :func:`all_values`), with an OTHER error
(:func:`not_ascii`) for a value hyper cannot hand over as text.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, Mapping, ValuesView
from typing import TYPE_CHECKING, Any

from multidict import CIMultiDict, CIMultiDictProxy

from fetchpipe._exceptions import TransportError
from fetchpipe._models import ErrorKind

if TYPE_CHECKING:
    from pyreqwest.http import HeaderMap
    from pyreqwest.response import Response

NOT_ASCII = (
    "the response's {name} header is not ASCII text, which the fast transport cannot read "
    "(hyper hands over no such value). HINT: use the aiohttp transport for this API"
)


def header(resp: Response, name: str) -> str | None:
    """A header the transport itself needs (its first value), or OTHER when hyper cannot hand
    it over as text."""
    try:
        return resp.get_header(name)
    except ValueError:  # pyreqwest: "failed to convert header to a str"
        raise TransportError(ErrorKind.OTHER, NOT_ASCII.format(name=name)) from None


def not_ascii(header_map: HeaderMap) -> TransportError:
    """Which of the headers the transport reads is not ASCII text, said as OTHER."""
    for name in ("content-length", "content-encoding", "content-type"):
        try:
            header_map.get(name)
        except ValueError:
            return TransportError(ErrorKind.OTHER, NOT_ASCII.format(name=name))
    return TransportError(ErrorKind.OTHER, NOT_ASCII.format(name="a"))


def all_values(resp: Response, name: str) -> list[str]:
    try:
        return resp.headers.getall(name)
    except ValueError:
        raise TransportError(ErrorKind.OTHER, NOT_ASCII.format(name=name)) from None


class LazyHeaders(Mapping[str, str]):
    """Response headers as pyreqwest holds them, looked up without case; turned into a
    ``CIMultiDictProxy`` only when iterated (most results never look past Content-Type, and
    building one for every response costs the fast transport about a tenth of its speed).

    A header value that is not ASCII text cannot be read through pyreqwest (hyper hands over
    no such value): it reads as absent here, where the aiohttp transport decodes it (with a
    repeated header, pyreqwest gives its values all or none: only the first is kept then, when
    it can be read, so that ``get`` and iterating agree).
    """

    __slots__ = ("_all", "_map")

    def __init__(self, header_map: HeaderMap) -> None:
        self._map = header_map
        self._all: CIMultiDictProxy[str] | None = None

    def get(self, key: str, default: Any = None) -> Any:
        try:
            value = self._map.get(key)
        except ValueError:  # not ASCII text
            return default
        return default if value is None else value

    def getall(self, key: str, default: Any = ()) -> Any:
        return self._all_headers().getall(key, default)

    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return str(value)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self._all_headers())

    def __len__(self) -> int:
        return len(self._all_headers())

    def items(self) -> ItemsView[str, str]:  # every value of a repeated header
        return self._all_headers().items()

    def values(self) -> ValuesView[str]:
        return self._all_headers().values()

    def __repr__(self) -> str:
        return f"<LazyHeaders({list(self._all_headers().items())!r})>"

    def _all_headers(self) -> CIMultiDictProxy[str]:
        if self._all is None:
            readable: CIMultiDict[str] = CIMultiDict()
            for name in dict.fromkeys(self._map.keys()):
                try:
                    values = self._map.getall(name)
                except ValueError:  # one is not ASCII text: keep the first if it can be read
                    first = self.get(name)
                    values = [] if first is None else [first]
                for value in values:
                    readable.add(name, value)
            self._all = CIMultiDictProxy(readable)
        return self._all
