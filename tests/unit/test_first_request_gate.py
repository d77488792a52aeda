"""The first-request gate's pure parts: when a host is gated, and the bounded set of hosts seen."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fetchpipe.engine.aimd import AdaptivePolicy
from fetchpipe.engine.politeness import ALONE_UP_TO, HostPace, HostsSeen


def test_a_host_is_gated_only_where_a_burst_is_possible() -> None:
    policy = AdaptivePolicy()
    assert HostPace.gates(policy, read_headers=True, most_in_flight=ALONE_UP_TO + 1)
    assert not HostPace.gates(policy, read_headers=True, most_in_flight=ALONE_UP_TO)
    assert not HostPace.gates(policy, read_headers=False, most_in_flight=100)
    assert not HostPace.gates(AdaptivePolicy(first_wait=0), read_headers=True, most_in_flight=100)


@given(st.lists(st.sampled_from([f"h{i}" for i in range(40)]), max_size=200), st.integers(1, 30))
def test_hosts_seen_keeps_the_latest_within_its_bound(hosts: list[str], bound: int) -> None:
    seen = HostsSeen(bound)
    for host in hosts:
        seen.add(host)
    assert len(seen) == min(bound, len(set(hosts)))
    # The host added last is always kept; only hosts that were added are.
    if hosts:
        assert hosts[-1] in seen
    assert all(h in hosts for h in (f"h{i}" for i in range(40)) if h in seen)
