"""A request on its way through the engine, and the rules that compare two of them."""

from __future__ import annotations

from fetchpipe._models import Request, Timings
from fetchpipe.engine.cache.http_cache import Hit
from fetchpipe.engine.cache.keys import CacheKey


class Item:
    """A request on its way through the engine.

    ``send`` is what goes on the wire (the request plus conditional headers when a stored
    response is being revalidated); ``followers`` are identical requests that arrived while
    this one was in flight and will share its result. ``number`` is the breaker's number of
    the attempt in flight (0: none to report); ``on_budget`` marks a retry the host's retry
    budget let go, whose outcome it must hear; ``failure`` and ``status`` describe the last
    failed attempt while a retry waits; ``sent_at`` is when the latest attempt started.
    """

    __slots__ = (
        "attempt",
        "cache_key",
        "deadline",
        "failure",
        "followers",
        "hit",
        "number",
        "on_budget",
        "plain",
        "request",
        "send",
        "sent_at",
        "status",
        "timings",
    )

    def __init__(self, request: Request, queued: float) -> None:
        self.request = request
        self.send = request
        self.timings = Timings(queued)
        self.attempt = 0
        self.deadline = 0.0
        self.cache_key: CacheKey | None = None
        self.hit: Hit | None = None
        self.followers: list[Item] | None = None
        self.number = 0
        self.on_budget = False
        self.failure = ""
        self.status: int | None = None
        self.sent_at = 0.0
        """When the attempt in flight (or the last one) started, loop time."""
        self.plain: Request | None = None
        """``send`` before a lane's credential was added (a request with lanes, once sent)."""


def share_key(item: Item) -> tuple[object, ...] | None:
    """Requests share one fetch only when everything sent and expected is the same."""
    key = item.cache_key
    if key is None:
        return None
    return (key.key, tuple(sorted(key.vary_source.items())), item.request.expect)


def expired(item: Item, now: float) -> bool:
    """Whether ``item``'s deadline has passed (the scheduler's test for a waiting request)."""
    return bool(item.deadline) and now >= item.deadline
