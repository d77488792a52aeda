"""The pure parts of a pipeline's engine on a cluster: what is shipped, and the clock."""

from __future__ import annotations

import pickle

from fetchpipe import Request
from fetchpipe._models import Result, Timings
from fetchpipe.distributed.batch import FetchSettings
from fetchpipe.distributed.cluster_stream import _shifted
from fetchpipe.distributed.shard_engine import Exchanged, _shippable
from fetchpipe.engine.proxies import proxy_policy


def test_shipped_settings_show_no_header_value_or_proxy_in_their_repr() -> None:
    proxy = proxy_policy("http://user:pw-in-proxy@127.0.0.1:3128", "test", {})
    settings = FetchSettings(headers={"Authorization": "Bearer tok-in-header"}, proxy=proxy)
    text = repr(settings)
    assert "tok-in-header" not in text and "pw-in-proxy" not in text
    assert pickle.loads(pickle.dumps(settings)).headers == settings.headers  # still shipped


def test_a_workers_timings_move_onto_this_clock_and_unset_ones_stay_unset() -> None:
    timings = Timings(queued=10.0, started=10.5, first_byte=0.0, done=11.0)
    moved = _shifted(timings, 100.0)
    assert (moved.queued, moved.started, moved.first_byte, moved.done) == (110, 110.5, 0, 111)
    assert moved.elapsed == timings.elapsed == 0.5


def test_a_result_with_aiohttps_headers_can_be_shipped_back() -> None:
    from multidict import CIMultiDict, CIMultiDictProxy

    headers = CIMultiDictProxy(CIMultiDict([("Link", "<a>"), ("link", "<b>")]))
    result = Result(Request("http://127.0.0.1/x", key=7), status=200, headers=headers)
    result.headers = _shippable(result.headers)
    back = pickle.loads(pickle.dumps(Exchanged([result], 0.0)))
    shipped = back.results[0].headers
    assert shipped.getall("LINK") == ["<a>", "<b>"]  # case-insensitive, repeated names kept
    assert back.results[0].request.key == 7
