"""A pipeline source with several tokens, against an API that limits each token on its own:
one token told to rest for an hour (Retry-After) stays out while the other fetches every
page; the run's events name the resting token by its label; nothing the run wrote holds a
token; and a quota counts per token, the source stopping only when every token's is spent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from fetchpipe.pipeline import Pipeline
from tests.integration.per_token_api import PAGES, TOKENS, PerTokenApi

pytestmark = pytest.mark.timeout(60)


def _pipeline(base: str, db: Path, **host: Any) -> Pipeline:
    return Pipeline.from_dict(
        {
            "name": "lanes",
            "destination": f"duckdb:///{db}",
            "defaults": {"retry": {"attempts": 3, "retry_after_max": 30}},
            "hosts": {"127.0.0.1": {"max_concurrency": 2, **host}},
            "sources": [
                {
                    "name": "items",
                    "url": f"{base}/items",
                    "auth": {"type": "bearer", "tokens": ["${LANE_TOKEN_A}", "${LANE_TOKEN_B}"]},
                    "records": "items",
                    "primary_key": "id",
                    "paginate": {"type": "page"},
                }
            ],
        }
    )


@pytest.fixture(autouse=True)
def _tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANE_TOKEN_A", TOKENS[0])
    monkeypatch.setenv("LANE_TOKEN_B", TOKENS[1])


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(db), read_only=True) as connection:
        return connection.execute(sql).fetchall()


async def test_a_resting_token_stays_out_and_the_events_name_it_by_label(
    per_token_api: tuple[PerTokenApi, str], tmp_path: Path
) -> None:
    state, base = per_token_api
    state.rate = 1000.0
    state.resting.add(TOKENS[0])
    db = tmp_path / "lanes.duckdb"
    report = await _pipeline(base, db).arun(state_dir=tmp_path / "state")
    assert report.source("items").status == "ok"
    assert _rows(db, "SELECT count(*) FROM items") == [(PAGES,)]
    assert len(state.arrivals[TOKENS[0]]) == 1  # told once, then it rests
    assert len(state.arrivals[TOKENS[1]]) == PAGES + 1  # every page, the last one empty
    paused = _rows(db, "SELECT host, wait FROM _fetchpipe_events WHERE event = 'host_paused'")
    assert paused == [("127.0.0.1 tokens[0]", 30.0)]  # at most retry_after_max
    written = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert b"tokens[0]" in written
    assert not any(token.encode() in written for token in TOKENS)


async def test_a_quota_per_token_stops_the_source_only_when_every_one_is_spent(
    per_token_api: tuple[PerTokenApi, str], tmp_path: Path
) -> None:
    """A quota of 6 a day per token: 12 pages in the first run (6 on each token), then the
    source stops, kept unfinished, naming a token's lane; the next window finishes it."""
    state, base = per_token_api
    state.rate = 1000.0
    db = tmp_path / "lanes.duckdb"
    quota = {"quota": {"requests": 6, "per": "day"}}
    first = await _pipeline(base, db, **quota).arun(state_dir=tmp_path / "today")
    assert [len(state.arrivals[t]) for t in TOKENS] == [6, 6]
    assert first.source("items").status == "failed" and first.unfinished
    assert "the quota of 127.0.0.1 tokens[" in (first.source("items").reason or "")
    assert sorted(first.quotas_spent) == ["127.0.0.1 tokens[0]", "127.0.0.1 tokens[1]"]
    second = await _pipeline(base, db, **quota).arun(state_dir=tmp_path / "tomorrow")
    assert second.source("items").status == "ok"
    assert _rows(db, "SELECT count(*) FROM items") == [(PAGES,)]
    assert sum(len(state.arrivals[t]) for t in TOKENS) == PAGES + 1
