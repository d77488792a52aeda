"""Quotas that outlive a run: each host with a ``HostLimits.quota`` spends requests from blocks
reserved in the shared ledger (:mod:`fetchpipe.engine.quota_ledger`).

Every attempt counts (a retry is a request the API sees). A host's :class:`HostQuota` spends
from its block in memory; an empty block reserves the next one: :func:`block_size` requests,
never more than the host has waiting (so that a reservation is spent, not held while another
process is told the quota is gone: two processes sharing a quota of 300 send exactly 300),
and at most :data:`BLOCK` (one transaction per ``BLOCK`` requests). When the ledger grants
nothing, the quota is spent until the window resets: the host's requests end as
``quota_exhausted`` without another look at the ledger until then. What is left of a block
goes back to the ledger when the Fetcher closes (:meth:`QuotaBook.close`), or when a new window
starts.

The quotas live in the Fetcher (:class:`QuotaBook`), not in a host's state that is forgotten
when idle, so an idle host keeps its block.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

from fetchpipe._quota import Quota, Window
from fetchpipe.engine.quota_ledger import FILE_NAME, QuotaLedger

BLOCK = 50
"""Requests reserved at most per transaction on the ledger."""
DEFAULT_STATE_DIR = Path(".fetchpipe")


def block_size(waiting: int, block: int = BLOCK) -> int:
    """Requests to reserve for a host with ``waiting`` requests to send (this one included):
    as many as it will send, within one block, at least one."""
    return max(1, min(block, waiting))


class HostQuota:
    """One host's quota: the block it holds, and when a spent quota resets."""

    __slots__ = ("_book", "exhausted_until", "host", "left", "quota", "setting", "used", "window")

    def __init__(self, host: str, quota: Quota, book: QuotaBook, setting: str = "") -> None:
        self.host = host
        """What the ledger counts under: the host, or a credential's lane of it."""
        self.setting = setting or host
        """The host the quota is configured for (in the HINT)."""
        self.quota = quota
        self._book = book
        self.window: Window | None = None
        self.left = 0
        """Requests reserved in ``window`` and not spent yet."""
        self.used = 0
        """The window's count in the ledger after the last reservation."""
        self.exhausted_until = 0.0
        """Unix time the spent quota resets (0: not spent)."""

    def spend(self, waiting: int, now: float | None = None) -> bool:
        """Take one request for an attempt about to be sent (``waiting``: the host's requests
        waiting, this one included). False: the quota is spent (see :meth:`message`)."""
        if now is None:
            now = time.time()
        window = self.window
        if self.left > 0 and window is not None and now < window.reset.timestamp():
            self.left -= 1
            return True
        if now < self.exhausted_until:
            return False
        return self._reserve(waiting, now)

    def _reserve(self, waiting: int, now: float) -> bool:
        window = self.quota.window(datetime.fromtimestamp(now, UTC))
        ledger = self._book.ledger()
        if self.window is not None and self.left and self.window.key != window.key:
            ledger.release(self.host, self.quota, self.window, self.left)  # the window is over
        self.window, self.left = window, 0
        granted, self.used = ledger.reserve(self.host, self.quota, window, block_size(waiting))
        if not granted:
            self.exhausted_until = window.reset.timestamp()
            return False
        self.exhausted_until = 0.0
        self.left = granted - 1
        return True

    def give_back(self) -> None:
        """Return the unspent part of the block to the ledger."""
        if self.left and self.window is not None:
            self._book.ledger().release(self.host, self.quota, self.window, self.left)
        self.left = 0

    def message(self) -> str:
        """Why a request of this host was not sent, with when the quota resets."""
        reset = datetime.fromtimestamp(self.exhausted_until, UTC)
        quota = self.quota
        return (
            f"not sent: the quota of {self.host} ({quota.requests} requests per {quota.per}) is "
            f"spent: {self.used} counted this {quota.per} in {self._book.path}; it resets at "
            f"{reset:%Y-%m-%d %H:%M} UTC. HINT: run again after the reset (a pipeline resumes "
            f"where it stopped), or raise the quota (fetch --quota {self.setting}=N/{quota.per}; "
            f"hosts: {{{self.setting}: {{quota: {{requests: N, per: {quota.per}}}}}}} in a "
            "pipeline file)"
        )


class QuotaBook:
    """The quotas of one Fetcher: a :class:`HostQuota` per host that has one, and the ledger
    (opened on first use) in ``state_dir``."""

    def __init__(self, state_dir: str | os.PathLike[str] = DEFAULT_STATE_DIR) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / FILE_NAME
        self._ledger: QuotaLedger | None = None
        self._hosts: dict[str, HostQuota] = {}

    def ledger(self) -> QuotaLedger:
        if self._ledger is None:
            self._ledger = QuotaLedger(self.state_dir)
        return self._ledger

    def for_host(self, host: str, quota: Quota, *, setting: str = "") -> HostQuota:
        """``host``'s quota, made on first use (``host`` may be a credential's lane of the
        host ``setting``, whose quota then counts per credential)."""
        found = self._hosts.get(host)
        if found is None or found.quota != quota:
            if found is not None:
                found.give_back()
            found = self._hosts[host] = HostQuota(host, quota, self, setting)
        return found

    def spent(self) -> dict[str, str]:
        """Host -> why its requests were not sent, for each host whose quota is spent now."""
        now = time.time()
        return {
            host: quota.message()
            for host, quota in sorted(self._hosts.items())
            if quota.exhausted_until > now
        }

    def close(self) -> None:
        """Give back every unspent reservation and close the ledger."""
        if self._ledger is None:
            return
        try:
            for quota in self._hosts.values():
                quota.give_back()
        finally:
            self._ledger.close()
            self._ledger = None
