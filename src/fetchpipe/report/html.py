"""The report of a run as one self-contained HTML page: :func:`render` (a pure function).

Built with the standard library (``html.escape`` and string joins): the page is a handful of
tables and one canvas, which a template engine would not make shorter, and no text reaches the
page unescaped. The waterfall's data travels as JSON in a ``<script type="application/json">``
element, with ``<``, ``>`` and ``&`` written as ``\\u003c``... so that no URL or message can close
it. The style sheet and the script are inlined (:mod:`.assets`): the file needs no network.

Sizes: every request is a bar (drawn on a canvas); URLs ride along for the tooltips up to
:data:`MAX_URLS` requests; the waterfall shows the :data:`MAX_ROWS` busiest hosts (or sources)
and gathers the rest in one row; the tables list :data:`MAX_FAILURES` failures and
:data:`MAX_HOSTS` hosts, and say how many more there are.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC
from html import escape
from typing import Any

from fetchpipe.destinations.run_log import OUTCOMES
from fetchpipe.report import assets, politeness, stats
from fetchpipe.report.data import RunData
from fetchpipe.report.markup import table as _table
from fetchpipe.report.markup import text as _text
from fetchpipe.report.stats import event_field, field_of

MAX_URLS = 20_000
"""Up to this many requests, the page carries each one's URL (for its tooltip)."""
MAX_ROWS = 150
"""Rows of the waterfall: the busiest hosts (or sources); the others share one row."""
MAX_FAILURES = 500
"""Failures listed one by one (all of them are counted, and grouped by message)."""
MAX_HOSTS = 200
"""Hosts listed in the per-host table."""
SLOWEST = 20
_EVENT_KINDS = {
    "host_paused": "paused",
    "host_down": "down",
    "host_up": "up",
    "request_retried": "retried",
    "retry_refused": "refused",
}


def _seconds(value: float | None) -> str:
    if value is None:
        return "–"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    return f"{value:.2f} s"


def _bytes(value: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def _number(value: float | None) -> str:
    return "–" if value is None else f"{round(value):,}"


def _json(value: Any) -> str:
    text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _indexed(names: Iterable[str], limit: int) -> tuple[list[str], dict[str, int]]:
    """Row names of the waterfall, the busiest ``limit`` first; the rest share one row."""
    counts = Counter(names)
    busiest = {name for name, _ in counts.most_common(limit)}
    kept = sorted(busiest, key=stats.natural)
    index = {name: i for i, name in enumerate(kept)}
    rest = [name for name in counts if name not in index]
    if rest:
        label = f"({len(rest):,} others)"
        for name in rest:
            index[name] = len(kept)
        kept.append(label)
    return kept, index


def waterfall_data(data: RunData) -> dict[str, Any]:
    """The JSON the waterfall script draws: columns of the request rows, and the events."""
    rows = data.requests
    hosts, host_index = _indexed((str(field_of(r, "host") or "-") for r in rows), MAX_ROWS)
    sources, source_index = _indexed((str(field_of(r, "source") or "-") for r in rows), MAX_ROWS)
    outcome_index = {name: i for i, name in enumerate(OUTCOMES)}
    end = max(stats.run_seconds(data), max((stats.done_at(r) for r in rows), default=0.0))
    events = []
    ups: dict[str, list[float]] = {}
    for event in data.events:
        if event_field(event, "event") == "host_up":
            up = float(event_field(event, "start_offset") or 0)
            ups.setdefault(str(event_field(event, "host") or "-"), []).append(up)
    for event in data.events:
        kind = _EVENT_KINDS.get(str(event_field(event, "event")))
        host = str(event_field(event, "host") or "-")
        if kind is None or host not in host_index:
            continue
        source = source_index.get(str(event_field(event, "source") or "-"), -1)
        wait = event_field(event, "wait")
        at = float(event_field(event, "start_offset") or 0)
        if kind == "down":  # open until the host is up again, else for its cool-down
            wait = next((up - at for up in ups.get(host, ()) if up >= at), wait)
        events.append(
            [
                round(at, 3),
                kind,
                host_index[host],
                source,
                None if wait is None else round(float(wait), 3),
            ]
        )
    queued = [round(float(field_of(r, "queued_at") or 0), 4) for r in rows]
    return {
        "end": round(end, 3),
        "outcomes": list(OUTCOMES),
        "hosts": hosts,
        "sources": sources,
        "h": [host_index[str(field_of(r, "host") or "-")] for r in rows],
        "s": [source_index[str(field_of(r, "source") or "-")] for r in rows],
        "o": [outcome_index.get(str(field_of(r, "outcome")), 0) for r in rows],
        "q": queued,
        "b": [
            max(q, round(float(field_of(r, "start_offset") or 0), 4))
            for q, r in zip(queued, rows, strict=True)
        ],
        "t": [round(float(field_of(r, "total_time") or 0), 4) for r in rows],
        "st": [field_of(r, "status") or 0 for r in rows],
        "a": [field_of(r, "attempts") or 1 for r in rows],
        "u": [str(field_of(r, "url") or "") for r in rows] if len(rows) <= MAX_URLS else None,
        "ev": events,
    }


def _legend(data: RunData) -> str:
    shown = stats.outcome_counts(data)
    items = [
        f'<span><i style="background:{colour}"></i>{escape(name)} ({shown.get(name, 0):,})</span>'
        for name, colour in assets.COLOURS.items()
    ]
    items += [
        f'<span><i style="background:{assets.QUEUE_COLOUR};height:5px"></i>'
        "waiting in the queue</span>",
        f'<span><i style="background:{assets.PAUSE_COLOUR};border-left:2px solid #c2630a"></i>'
        "host paused (Retry-After)</span>",
        f'<span><i style="background:{assets.DOWN_COLOUR};border-left:2px solid #b42318"></i>'
        "breaker open (host down)</span>",
        '<span><i style="background:#7c2d12;width:7px;height:5px;'
        'clip-path:polygon(0 0,100% 0,50% 100%)"></i>failed attempt, retried</span>',
        '<span><i style="border-left:2px dashed #1f2933;width:0;height:12px;border-radius:0"></i>'
        "end of the run</span>",
    ]
    return f'<div class="legend">{"".join(items)}</div>'


def _reasons(group: stats.Group) -> str:
    return ", ".join(f"{escape(why)} ×{count}" for why, count in group.reasons.most_common(4))


def _rate(group: stats.Group) -> str:
    achieved = "–" if group.rate is None else f"{group.rate:.1f}/s"
    if group.limit is None:
        return achieved
    return f"{achieved} of {group.limit:g}/s"


def _groups_table(groups: list[stats.Group], title: str, limit: int) -> str:
    head = [
        (title, True),
        ("requests", False),
        ("failed", False),
        ("retries", False),
        ("retry reasons", True),
        ("cache hits", False),
        ("p50", False),
        ("p95", False),
        ("max", False),
        ("rate achieved", False),
        ("bytes", False),
    ]
    rows = [
        [
            (_text(g.name), "l"),
            (_number(g.requests), ""),
            (f"{g.failed:,}", "up" if g.failed else ""),
            (f"{g.retries:,}", ""),
            (_reasons(g), "l"),
            ("–" if g.hit_ratio is None else f"{g.hit_ratio:.0%}", ""),
            (_seconds(g.p50), ""),
            (_seconds(g.p95), ""),
            (_seconds(g.max), ""),
            (_rate(g), ""),
            (_bytes(g.bytes), ""),
        ]
        for g in groups[:limit]
    ]
    more = ""
    if len(groups) > limit:
        more = f'<p class="note">and {len(groups) - limit:,} more, with fewer requests</p>'
    return f'<div class="scroll">{_table(head, rows)}</div>{more}'


def _request_rows(rows: Iterable[Sequence[Any]], message: bool) -> list[list[tuple[str, str]]]:
    out = []
    for r in rows:
        line = [
            (_text(field_of(r, "source") or "–"), "l"),
            (_text(field_of(r, "host")), "l"),
            (_text(f"{field_of(r, 'method')} {field_of(r, 'url')}"), "url"),
            (_text(field_of(r, "outcome")), "l"),
            (_text(field_of(r, "status") or "–"), ""),
            (_text(field_of(r, "attempts")), ""),
            (f"{float(field_of(r, 'start_offset') or 0):.2f} s", ""),
            (_seconds(field_of(r, "queue_wait")), ""),
            (_seconds(field_of(r, "total_time")), ""),
        ]
        if message:
            line.insert(4, (_text(field_of(r, "error")), "l"))
            line.append((_text(field_of(r, "message")), "msg"))
        out.append(line)
    return out


_REQUEST_HEAD = [
    ("source", True),
    ("host", True),
    ("request", True),
    ("outcome", True),
    ("status", False),
    ("attempts", False),
    ("started", False),
    ("queue wait", False),
    ("took", False),
]


def _requests_table(data: RunData, rows: Sequence[Sequence[Any]], message: bool) -> str:
    """A table of requests; without the source column when the run had no sources (fetch)."""
    head = list(_REQUEST_HEAD)
    if message:
        head = [*head[:4], ("error", True), *head[4:], ("message", True)]
    lines = _request_rows(rows, message)
    if not any(field_of(r, "source") for r in data.requests):
        head = head[1:]
        lines = [line[1:] for line in lines]
    return _table(head, lines)


def _failures(data: RunData) -> str:
    failed = stats.failures(data)
    if not failed:
        return '<p class="note">No request failed.</p>'
    by_message = Counter(
        (str(field_of(r, "host")), str(field_of(r, "error")), str(field_of(r, "message")))
        for r in failed
    )
    grouped = _table(
        [("host", True), ("error", True), ("message", True), ("requests", False)],
        (
            [(_text(h), "l"), (_text(e), "l"), (_text(m), "msg"), (f"{c:,}", "")]
            for (h, e, m), c in by_message.most_common()
        ),
    )
    listed = _requests_table(data, failed[:MAX_FAILURES], message=True)
    more = ""
    if len(failed) > MAX_FAILURES:
        more = (
            f'<p class="note">{len(failed) - MAX_FAILURES:,} more failures are in the request '
            "log: <code>SELECT * FROM _fetchpipe_requests WHERE run_id = "
            f"'{_text(data.run.run_id)}' AND outcome = 'failed'</code></p>"
        )
    return (
        f"<p>{len(failed):,} failed requests, by host and message:</p>{grouped}"
        f'<p>Each of them:</p><div class="scroll">{listed}</div>{more}'
    )


def _change(figure: stats.Compared, seconds: bool = False, worse_up: bool = False) -> str:
    """The change as a cell: ``+0.13 s (+5%)``, ``-3 (-60%)``, ``=``; red when it got worse."""
    delta = figure.change
    if delta is None or figure.before is None:
        return "<td>–</td>"
    if abs(delta) < (0.005 if seconds else 0.5):
        return "<td>=</td>"
    text = f"{delta:+.2f} s" if seconds else f"{round(delta):+,}"
    if figure.before:
        text += f" ({delta / figure.before:+.0%})"
    return f'<td class="{"up" if worse_up and delta > 0 else ""}">{text}</td>'


def _shown(value: float | None, seconds: bool = False) -> str:
    if value is None:
        return "<td>–</td>"
    return f"<td>{value:.2f} s</td>" if seconds else f"<td>{round(value):,}</td>"


def _comparison(data: RunData) -> str:
    compared = stats.comparison(data)
    if compared is None or data.previous is None:
        return '<p class="note">No earlier run of this pipeline in this destination.</p>'
    previous = data.previous
    when = ""
    if previous.started_at is not None:
        when = f", started {previous.started_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
    totals = "".join(
        f'<tr><td class="l">{_text(label)}</td>{_shown(f.now, label == "seconds")}'
        f"{_shown(f.before, label == 'seconds')}"
        f"{_change(f, label == 'seconds', worse_up=label != 'requests')}</tr>"
        for label, f in compared.totals.items()
    )
    parts = [
        f'<p class="sub">The previous run: {_text(previous.run_id)} ({_text(previous.status)}'
        f"{when}).</p>",
        '<table><thead><tr><th class="l"></th><th>this run</th><th>previous</th>'
        f"<th>change</th></tr></thead><tbody>{totals}</tbody></table>",
    ]
    if compared.sources:
        lines = "".join(
            f'<tr><td class="l">{_text(name)}</td>{_shown(rows.now)}{_shown(rows.before)}'
            f"{_change(rows)}{_shown(requests.now)}{_shown(requests.before)}"
            f"{_change(requests)}</tr>"
            for name, (rows, requests) in compared.sources.items()
        )
        parts.append(
            '<p>Per source:</p><table><thead><tr><th class="l">source</th><th>rows</th>'
            "<th>previous</th><th>change</th><th>requests</th><th>previous</th><th>change</th>"
            f"</tr></thead><tbody>{lines}</tbody></table>"
        )
    return "".join(parts)


def _headline(data: RunData) -> str:
    rows = data.requests
    seconds = stats.run_seconds(data)
    if not rows:
        return '<p class="headline">This run recorded no requests.</p>'
    slowest = max(rows, key=lambda r: float(field_of(r, "total_time") or 0))
    took = float(field_of(slowest, "total_time") or 0)
    last = max(stats.done_at(r) for r in rows)
    share = f" ({took / last:.0%} of the time to the last result)" if last > 0 else ""
    hosts = len({field_of(r, "host") for r in rows})
    return (
        f'<p class="headline">{len(rows):,} requests to {hosts:,} '
        f"hosts; the last result came {last:.2f} s after the start; the slowest request took "
        f"{took:.2f} s{share}: <code>{_text(field_of(slowest, 'url'))}</code>. "
        f"The run took {seconds:.2f} s in all.</p>"
    )


def _figures(data: RunData) -> str:
    run = data.run
    counts = stats.outcome_counts(data)
    items = [
        (_seconds(stats.run_seconds(data)), "run time"),
        (f"{run.requests:,}", "requests"),
        (f"{counts.get('ok', 0) + counts.get('retried', 0):,}", "ok from the network"),
        (f"{run.retries:,}", "retries"),
        (f"{run.cache_hits:,}", "cache hits"),
        (f"{run.failures:,}", "failed"),
    ]
    rows = [
        (f"{v.get('rows'):,}", f"rows: {name}")
        for name, v in run.sources.items()
        if v.get("rows") is not None
    ]
    return (
        '<div class="figures">'
        + "".join(
            f"<div><b>{value}</b><span>{_text(label)}</span></div>"
            for value, label in [*items, *rows]
        )
        + "</div>"
    )


def render(data: RunData) -> str:
    """The report of ``data`` as an HTML page (one string, self-contained)."""
    run = data.run
    started = (
        "" if run.started_at is None else f"{run.started_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
    )
    sampled = ""
    if data.sampled:
        sampled = (
            '<p class="note">This run kept a sample of its ordinary requests (the pipeline\'s '
            "report.sample): every failed, retried and slow request is here, counts are "
            "estimates.</p>"
        )
    sources = stats.groups(data, "source")
    by_source = ""
    if any(g.name != "-" for g in sources):
        by_source = f"<h2>Per source</h2>{_groups_table(sources, 'source', len(sources))}"
    title = f"fetchpipe report: {run.pipeline} {run.run_id}"
    source_option = '<option value="source">source</option>' if by_source else ""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # Nothing may be fetched: no network, no other file (the page is one file).
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">",
        f"<title>{_text(title)}</title>",
        f"<style>{assets.STYLE}</style>",
        f"<script>{assets.ERRORS_SCRIPT}</script>",
        "</head><body>",
        '<pre id="errors" data-count="0"></pre>',
        f"<h1>{_text(run.pipeline)} · run {_text(run.run_id)}</h1>",
        f'<p class="sub">{_text(run.status)}{" · started " + started if started else ""}</p>',
        _figures(data),
        _headline(data),
        sampled,
        "<h2>Waterfall</h2>",
        '<p class="note">One bar per request, from the moment it was queued (grey: waiting for '
        "its host's limits) through its attempts to its result, coloured by outcome. Zoom with "
        "the buttons or Ctrl + wheel, drag or Shift + wheel to move along; hover a bar for the "
        "request.</p>",
        _legend(data),
        '<div class="controls"><button id="wf-in" title="zoom in">+</button>'
        '<button id="wf-out" title="zoom out">−</button>'
        '<button id="wf-fit">whole run</button>'
        '<label>one row per <select id="wf-group"><option value="host">host</option>'
        f"{source_option}</select></label>"
        '<span id="wf-range" class="note"></span></div>',
        '<div id="wf"><canvas id="wf-axis"></canvas><div id="wf-body">'
        '<canvas id="waterfall"></canvas></div></div>',
        '<div id="tip"></div>',
        by_source,
        "<h2>Per host</h2>",
        _groups_table(stats.groups(data, "host"), "host", MAX_HOSTS),
        '<p class="note">Latency: first attempt to result (waits between attempts included). '
        "Rate achieved: requests sent per second from the host's first send to its last result, "
        "beside the configured limit when the report knows it.</p>",
        "<h2>Politeness per host</h2>",
        politeness.section(data),
        f"<h2>The slowest {SLOWEST} requests</h2>",
        '<div class="scroll">'
        + _requests_table(data, stats.slowest(data, SLOWEST), message=False)
        + "</div>",
        "<h2>Failures</h2>",
        _failures(data),
        "<h2>Compared with the previous run</h2>",
        _comparison(data),
        f'<script type="application/json" id="wf-data">{_json(waterfall_data(data))}</script>',
        '<script type="application/json" id="wf-colours">'
        + _json(
            {
                "outcomes": assets.COLOURS,
                "queue": assets.QUEUE_COLOUR,
                "pause": assets.PAUSE_COLOUR,
                "down": assets.DOWN_COLOUR,
            }
        )
        + "</script>",
        f"<script>{assets.SCRIPT}</script>",
        "</body></html>",
    ]
    return "\n".join(part for part in parts if part)


__all__ = ["MAX_FAILURES", "MAX_HOSTS", "MAX_ROWS", "MAX_URLS", "render", "waterfall_data"]
