"""Several credentials for one host (``Request.lanes``), against a real local API that limits
each token on its own: every token is paced by the host's limits, a token told to rest stays
out while the others carry the requests, and a quota counts per token across runs."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fetchpipe import ErrorKind, Fetcher, HostLimits, Lane, Limits, Quota, Request, RetryPolicy
from fetchpipe.engine.quota_ledger import QuotaLedger
from tests.integration.per_token_api import TOKENS, PerTokenApi
from tests.integration.transports import both_transports, current

pytestmark = [both_transports, pytest.mark.timeout(60)]


def lanes(*tokens: str) -> tuple[Lane, ...]:
    return tuple(
        Lane(f"tokens[{i}]", headers={"Authorization": f"Bearer {t}"}) for i, t in enumerate(tokens)
    )


_runs = itertools.count()


async def fetch(
    base: str, count: int, tokens: tuple[str, ...], limits: HostLimits, **settings: object
) -> tuple[list[float], list[object]]:
    run = next(_runs)
    requests = [Request(f"{base}/r{run}/{i}", lanes=lanes(*tokens)) for i in range(count)]
    host = "127.0.0.1"
    started = time.monotonic()
    async with Fetcher(
        limits=Limits(hosts={host: limits}),
        transport=current(),
        **settings,  # type: ignore[arg-type]
    ) as fetcher:
        results = [r async for r in fetcher.stream(requests)]
    return [time.monotonic() - started], results


async def test_two_tokens_carry_twice_the_rate_and_neither_exceeds_its_own(
    per_token_api: tuple[PerTokenApi, str],
) -> None:
    """30 requests at 10 per second per token: with two tokens the server's arrivals span
    about half as long as with one, each token within its 10 per second, and no 429."""
    state, base = per_token_api
    limits = HostLimits(max_per_second=10.0, max_concurrency=4)
    (alone,), results = await fetch(base, 30, TOKENS[:1], limits)
    assert all(r.ok for r in results)  # type: ignore[attr-defined]
    (both,), results = await fetch(base, 30, TOKENS, limits)
    assert all(r.ok for r in results)  # type: ignore[attr-defined]
    assert not state.rejected
    # 30 on the first token alone, then the 30 of the second run shared about evenly.
    assert len(state.arrivals[TOKENS[0]]) + len(state.arrivals[TOKENS[1]]) == 60
    assert 12 <= len(state.arrivals[TOKENS[1]]) <= 18
    for token in TOKENS:
        assert state.most_in_one_second(token) <= 11
    print(f"30 requests at 10/s per token: one token {alone:.2f} s, two {both:.2f} s")
    assert alone / both >= 1.5, (alone, both)


async def test_a_token_told_to_rest_stays_out_while_the_other_carries_on(
    per_token_api: tuple[PerTokenApi, str],
) -> None:
    """The first token always gets 429 with Retry-After: 3600 (over retry_after_max): it is
    sent at most its concurrency's worth of requests, then rests, and every request lands on
    the second token, in seconds, not an hour."""
    state, base = per_token_api
    state.rate = 1000.0
    state.resting.add(TOKENS[0])
    limits = HostLimits(max_concurrency=2)
    retry = RetryPolicy(attempts=3, retry_after_max=30.0)
    (elapsed,), results = await fetch(base, 40, TOKENS, limits, retry=retry)
    assert [r.error for r in results] == [None] * 40  # type: ignore[attr-defined]
    assert len(state.arrivals[TOKENS[1]]) == 40
    assert 1 <= len(state.arrivals[TOKENS[0]]) <= 2  # what it had in flight when told
    assert elapsed < 20


async def test_every_token_resting_ends_as_with_one(per_token_api: tuple[PerTokenApi, str]) -> None:
    """Both tokens told to rest longer than retry_after_max: the requests end as
    rate_limited, as with a single token, and the run does not wait for the Retry-After."""
    state, base = per_token_api
    state.resting.update(TOKENS)
    retry = RetryPolicy(attempts=3, retry_after_max=0.5)
    (elapsed,), results = await fetch(base, 6, TOKENS, HostLimits(max_concurrency=1), retry=retry)
    assert {r.error for r in results} == {ErrorKind.RATE_LIMITED}  # type: ignore[attr-defined]
    assert elapsed < 20


async def test_a_quota_counts_per_token_across_two_runs(
    per_token_api: tuple[PerTokenApi, str], tmp_path: Path
) -> None:
    """A quota of 5 an hour with two tokens: 10 requests in all. The first run sends 8 (all
    land), the second 8 of which 2 land and 6 end as quota_exhausted. The ledger counts 5 for
    each token's lane, under its label; the server saw no token more than 5 times."""
    state, base = per_token_api
    state.rate = 1000.0
    quota = Quota(5, "hour")
    limits = HostLimits(max_concurrency=2, quota=quota)
    retry = RetryPolicy(attempts=1)
    _, first = await fetch(base, 8, TOKENS, limits, retry=retry, state_dir=tmp_path)
    assert all(r.ok for r in first)  # type: ignore[attr-defined]
    _, second = await fetch(base, 8, TOKENS, limits, retry=retry, state_dir=tmp_path)
    errors = [r.error for r in second]  # type: ignore[attr-defined]
    assert errors.count(None) == 2
    assert errors.count(ErrorKind.QUOTA_EXHAUSTED) == 6
    assert [len(state.arrivals[t]) for t in TOKENS] == [5, 5]
    message = next(r.error_message for r in second if not r.ok)  # type: ignore[attr-defined]
    assert "the quota of 127.0.0.1 tokens[" in message
    assert "fetch --quota 127.0.0.1=N/hour" in message
    ledger = QuotaLedger(tmp_path)
    now = datetime.now(UTC)
    assert [ledger.used(f"127.0.0.1 tokens[{i}]", quota, now) for i in (0, 1)] == [5, 5]
    ledger.close()
    stored = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert not any(token.encode() in stored for token in TOKENS)
