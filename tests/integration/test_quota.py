"""Quotas through the Python API, against the fleet: every attempt counts, a spent quota ends
the rest as quota_exhausted (a retry too), and a Fetcher gives back what it did not send."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fetchpipe import ErrorKind, Fetcher, HostLimits, Limits, Quota, RetryPolicy
from fetchpipe.engine.quota_ledger import QuotaLedger
from fetchpipe.sim import Fleet
from tests.integration.transports import both_transports, current

pytestmark = [both_transports, pytest.mark.timeout(60)]

_keys = itertools.count()


async def test_every_attempt_counts_and_a_retry_beyond_the_quota_is_not_sent(
    fleet: Fleet, tmp_path: Path
) -> None:
    """Three requests that each fail once, one at a time, with a quota of 5: the first two
    land on their retry, the third's first attempt is the fifth request and its retry is not
    sent. The quota alone equips the hosts (no breaker, budget or pacing)."""
    k = next(_keys)
    host = fleet.addresses[0]
    limits = Limits(hosts={host: HostLimits(max_concurrency=1, quota=Quota(5, "hour"))})
    urls = [fleet.url(f"/status/503,200?key=quota{k}-{i}") for i in range(3)]
    before = fleet.stats.requests(host=host)
    async with Fetcher(
        transport=current(),
        limits=limits,
        retry=RetryPolicy(attempts=2, budget=None),
        breaker=None,
        adaptive=None,
        state_dir=tmp_path,
    ) as fetcher:
        results = [r async for r in fetcher.stream(urls)]
    assert fleet.stats.requests(host=host) - before == 5
    by_url = {r.url: r for r in results}
    assert [by_url[u].ok for u in urls] == [True, True, False]
    last = by_url[urls[2]]
    assert (last.error, last.attempts) == (ErrorKind.QUOTA_EXHAUSTED, 1)
    message = last.error_message or ""
    assert message.startswith("HTTP 503; the retry was not sent: the quota of")
    assert "(5 requests per hour) is spent" in message and "resets at" in message
    ledger = QuotaLedger(tmp_path)
    assert ledger.used(host, Quota(5, "hour"), datetime.now(UTC)) == 5
    ledger.close()


async def test_what_a_fetcher_reserved_and_did_not_send_goes_back(
    fleet: Fleet, tmp_path: Path
) -> None:
    """A run stopped after 5 results (one request at a time, 40 waiting: a block of 40 was
    reserved): closing the Fetcher gives back what was not sent, so the ledger counts exactly
    what the server saw."""
    k = next(_keys)
    host = fleet.addresses[1]
    quota = Quota(1000, "day")
    limits = Limits(hosts={host: HostLimits(max_concurrency=1, quota=quota)})
    urls = [fleet.url(f"/item/{i}?key=back{k}", host=1) for i in range(40)]
    before = fleet.stats.requests(host=host)
    async with Fetcher(transport=current(), limits=limits, state_dir=tmp_path) as fetcher:
        stream = fetcher.stream(urls)
        got = 0
        async for result in stream:
            assert result.ok
            got += 1
            if got == 5:
                break
        await stream.aclose()  # type: ignore[attr-defined]
        ledger = QuotaLedger(tmp_path)
        held = ledger.used(host, quota, datetime.now(UTC))
        assert held > 5  # a block was reserved beyond what was sent
    sent = fleet.stats.requests(host=host) - before
    assert 5 <= sent < held
    assert ledger.used(host, quota, datetime.now(UTC)) == sent
    ledger.close()
