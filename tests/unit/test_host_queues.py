"""The per-host queues of the read-ahead and their encrypted temporary file, without a network."""

from __future__ import annotations

import os
import sys
from collections import deque
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fetchpipe import Limits, Request
from fetchpipe._exceptions import ConfigError
from fetchpipe.engine.host_queues import HostQueues
from fetchpipe.engine.spill import SpillStore

HOSTS = st.sampled_from(["a.test", "b.test", "c.test", "d.test"])
# push (host, n) or pop (host, count)
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("push"), HOSTS, st.integers(0, 0)),
        st.tuples(st.just("pop"), HOSTS, st.integers(1, 7)),
    ),
    max_size=300,
)


@settings(max_examples=150, deadline=None)
@given(operations=OPERATIONS, memory_items=st.integers(1, 12))
def test_every_request_comes_out_once_in_its_hosts_order(
    operations: list[tuple[str, str, int]], memory_items: int
) -> None:
    queues: HostQueues[str] = HostQueues(memory_items)
    model: dict[str, deque[str]] = {}
    pushed = 0
    out: list[str] = []
    try:
        for op, host, count in operations:
            if op == "push":
                pushed += 1
                request = f"http://{host}/{pushed}"
                queues.push(host, request)
                model.setdefault(host, deque()).append(request)
            else:
                got = queues.pop(host, count)
                expected = [
                    model[host].popleft() for _ in range(min(count, len(model.get(host, ()))))
                ]
                assert got == expected  # oldest first, as many as asked or waiting
                out.extend(got)
            assert queues.in_memory <= memory_items
            assert queues.count(host) == len(model.get(host, ()))
            assert len(queues) == sum(len(q) for q in model.values())
        for host in list(queues.hosts()):  # drain: the rest, host by host
            rest = queues.pop(host, 10_000)
            assert rest == list(model[host])
            out.extend(rest)
        assert len(out) == pushed and len(set(out)) == pushed  # each exactly once
        assert not queues and queues.on_disk == 0
        assert queues.peak_in_memory <= memory_items
    finally:
        queues.close()


def test_the_memory_bound_holds_and_the_rest_is_spilled() -> None:
    queues: HostQueues[str] = HostQueues(100)
    try:
        for i in range(10_000):
            queues.push(f"h{i // 1000}.test", f"http://h{i // 1000}.test/{i}")
        assert queues.peak_in_memory <= 100
        assert queues.spilled >= 9_900
        assert queues.on_disk + queues.in_memory == 10_000
        assert queues.pop("h3.test", 3) == [f"http://h3.test/{i}" for i in range(3000, 3003)]
    finally:
        queues.close()


def test_nothing_is_written_while_memory_suffices() -> None:
    opened: list[SpillStore] = []

    def open_store() -> SpillStore:
        opened.append(SpillStore())
        return opened[-1]

    queues: HostQueues[str] = HostQueues(50, open_store=open_store)
    for i in range(50):
        queues.push("a.test", str(i))
    assert queues.pop("a.test", 100) == [str(i) for i in range(50)]
    assert not opened and queues.spilled == 0
    queues.push("a.test", "x")
    queues.close()
    queues.close()  # twice is fine
    assert queues.pop("a.test", 1) == []
    with pytest.raises(RuntimeError, match="closed"):
        queues.push("a.test", "y")


HEADER_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
REQUESTS = st.builds(
    Request,
    url=st.from_regex(
        r"https?://[a-z]{1,8}\.test(:[0-9]{2,4})?/[a-z0-9/%?=&]{0,20}", fullmatch=True
    ),
    method=st.sampled_from(["GET", "POST", "PUT", "delete", "HEAD"]),
    headers=st.none() | st.dictionaries(HEADER_TEXT, HEADER_TEXT, max_size=3),
    params=st.none()
    | st.dictionaries(
        st.text(max_size=5),
        st.text(max_size=5) | st.integers() | st.floats(allow_nan=False),
        max_size=3,
    ),
    json=JSON_VALUES,
    body=st.none() | st.binary(max_size=30) | st.text(max_size=30),
    key=st.none() | st.integers() | st.text(max_size=8),
    retry=st.none() | st.booleans(),
    expect=st.sampled_from(["auto", "json", "text", "bytes"]),
)


@settings(max_examples=60, deadline=None)
@given(requests=st.lists(st.one_of(REQUESTS, st.text(max_size=40)), min_size=1, max_size=25))
def test_spilled_requests_come_back_exactly(requests: list[Request | str]) -> None:
    queues: HostQueues[Request | str] = HostQueues(1)  # every push writes the one before it
    try:
        for request in requests:
            queues.push("a.test", request)
        assert queues.spilled == len(requests) - 1
        back = queues.pop("a.test", len(requests))
    finally:
        queues.close()
    assert back == requests
    for got, sent in zip(back, requests, strict=True):
        assert type(got) is type(sent)
        if isinstance(sent, Request):
            assert isinstance(got, Request)
            for field in ("headers", "params", "json", "body", "key", "retry"):
                assert type(getattr(got, field)) is type(getattr(sent, field))


def test_a_request_pickle_cannot_write_is_kept_in_memory_in_its_place() -> None:
    odd = Request("http://a.test/2", headers=MappingProxyType({"X": "1"}))
    queues: HostQueues[Request] = HostQueues(1)
    try:
        for request in (Request("http://a.test/1"), odd, Request("http://a.test/3")):
            queues.push("a.test", request)
        back = queues.pop("a.test", 3)
    finally:
        queues.close()
    assert [r.url for r in back] == ["http://a.test/1", "http://a.test/2", "http://a.test/3"]
    assert back[1] is odd


def _open_sqlite_temporaries() -> dict[str, str]:
    found = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if "etilqs_" in target:
            found[fd] = target
    return found


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/fd")
def test_the_file_holds_no_secret_in_clear_and_is_gone_when_closed() -> None:
    before = set(_open_sqlite_temporaries())
    queues: HostQueues[Request] = HostQueues(1000)
    secret = "Bearer tok_" + "9f8e7d6c" * 8
    try:
        for i in range(30_000):  # about 8 MB: past SQLite's page cache, into the file
            queues.push(
                f"h{i % 3}.test",
                Request(
                    f"https://h{i % 3}.test/items?api_key=k3y{i}",
                    headers={"Authorization": secret},
                    json={"card": "4111-1111"},
                ),
            )
        files = {fd: t for fd, t in _open_sqlite_temporaries().items() if fd not in before}
        assert files, "SQLite did not write its temporary file"
        for fd, target in files.items():
            assert target.endswith("(deleted)")  # unlinked from the start
            content = Path(f"/proc/self/fd/{fd}").read_bytes()
            assert len(content) > 1_000_000
            for clear in (b"tok_9f8e7d6c", b"api_key", b"4111-1111", b"h1.test", b"items"):
                assert clear not in content
        assert queues.pop("h1.test", 1)[0].headers == {"Authorization": secret}
    finally:
        queues.close()
    assert not set(_open_sqlite_temporaries()) - before


def test_readahead_must_not_be_negative() -> None:
    assert Limits(readahead=0).readahead == 0
    with pytest.raises(ConfigError, match="readahead must be 0 or more"):
        Limits(readahead=-1)


def test_memory_items_must_be_positive() -> None:
    with pytest.raises(ValueError, match="memory_items"):
        HostQueues[Any](0)
