"""What engines that ran at once met, added into one EngineFigures (a shard engine's Fetchers, a
cluster pipeline run's shard engines): counts summed, each host's politeness figures side by
side, the figures added in left unchanged."""

from __future__ import annotations

import copy

from fetchpipe._host_rates import HostRateReport
from fetchpipe.distributed.shard_engine import EngineFigures


def test_figures_of_engines_side_by_side_add_up_host_by_host() -> None:
    first = EngineFigures(
        {"a.test": 1},
        2,
        {"a.test": HostRateReport("a.test", throttled=3, per_second=2.0, learned=True)},
        {"q.test": "not sent: quota spent"},
    )
    second = EngineFigures(
        {"a.test": 2, "b.test": 1},
        1,
        {
            "a.test": HostRateReport(
                "a.test", throttled=1, paused=1.5, per_second=3.0, learned=True
            ),
            "b.test": HostRateReport("b.test", published="10 per 2 s", per_second=5.0),
        },
    )
    kept = copy.deepcopy(second)
    total = EngineFigures()
    total.add(first)
    total.add(second)
    assert second == kept
    assert total.hosts_down == {"a.test": 3, "b.test": 1}
    assert total.retries_denied == 3
    assert total.quotas_spent == {"q.test": "not sent: quota spent"}
    assert total.rate_limits["a.test"].text == "learned 5/s, 4 429s, paused 1.5 s"
    assert total.rate_limits["b.test"] == second.rate_limits["b.test"]
