"""What a pipeline would request, in which order, and how many requests and how long at least.

:func:`build_plan` sends nothing. Sources come parents first (see
:mod:`fetchpipe.pipeline.spec.graph`). The number of pages of a paginated source, and so the
number of child requests, is unknown until fetched unless assumed (``pages``,
``records_per_page``); unknown counts are ``None``. The time is a lower bound from the
configured rates (and, given an assumed ``latency``, from the concurrency limits and pages that
must follow one another).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from fetchpipe._redact import REDACTED
from fetchpipe.pipeline.runtime.pagination import page_size, paginator_for, sequential
from fetchpipe.pipeline.spec.auth import ApiKeyAuth, Auth, BearerAuth
from fetchpipe.pipeline.spec.config import PipelineSpec
from fetchpipe.pipeline.spec.models import Source


@dataclass(frozen=True, slots=True)
class SourcePlan:
    """One source: its first request and what is known of its request count."""

    name: str
    parent: str | None
    method: str
    url: str
    body: str | None
    """The first request's json body, as sent (secrets masked; shortened when long)."""
    host: str
    write: str
    primary_key: list[str]
    auth: str | None
    headers: list[str]
    pagination: str
    pages: str
    runs: int | None
    requests: int | None
    min_requests: int
    tables: list[str]
    """Its unnest tables: ``items -> order_items (order_id: id, position in _index)``."""
    credentials: int = 1
    """Its credentials (``tokens:``/``values:``): each goes by the host's limits."""


@dataclass(frozen=True, slots=True)
class HostPlan:
    """One host: its limits, the requests known (or estimated) for it, the least time."""

    host: str
    max_concurrency: int | None
    max_per_second: float | None
    requests: int
    complete: bool
    min_seconds: float
    credentials: int = 1
    """The most credentials of its sources': the host's limits apply to each."""


@dataclass(frozen=True, slots=True)
class Plan:
    name: str
    file: str | None
    destination: str
    max_concurrency: int
    sources: list[SourcePlan]
    hosts: list[HostPlan]
    requests: int | None
    min_requests: int
    min_seconds: float
    assumed: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_plan(
    pipeline: PipelineSpec,
    *,
    pages: int | None = None,
    records_per_page: int | None = None,
    latency: float | None = None,
) -> Plan:
    """The plan of ``pipeline``, with optional assumptions for what only fetching can tell."""
    limits = pipeline.limits()
    records: dict[str, int | None] = {}
    plans: list[SourcePlan] = []
    for source in pipeline.ordered_sources():
        paginated = source.paginate.type != "none"
        per_run = pages if paginated else 1
        parent = source.parent
        runs = 1 if parent is None else records.get(parent)
        requests = None if runs is None or per_run is None else runs * per_run
        size = page_size(source.paginate) or records_per_page
        records[source.name] = None if requests is None or size is None else requests * size
        plans.append(_source_plan(pipeline, source, runs, requests))
    hosts = _host_plans(pipeline, plans, latency)
    known = [p.requests for p in plans]
    assumed = {
        k: float(v)
        for k, v in (("pages", pages), ("records_per_page", records_per_page), ("latency", latency))
        if v is not None
    }
    return Plan(
        name=pipeline.name,
        file=pipeline.file,
        destination=str(pipeline.target),
        max_concurrency=limits.max_concurrency,
        sources=plans,
        hosts=hosts,
        requests=None if None in known else sum(n or 0 for n in known),
        min_requests=sum(p.min_requests for p in plans),
        min_seconds=max((h.min_seconds for h in hosts), default=0.0),
        assumed=assumed,
    )


def _source_plan(
    pipeline: PipelineSpec, source: Source, runs: int | None, requests: int | None
) -> SourcePlan:
    params: dict[str, Any] = dict(source.params)
    if source.incremental is not None and source.incremental.initial is not None:
        params[source.incremental.param] = source.incremental.first_value()
    first = paginator_for(source.paginate, source.url, params, body=source.body).first()
    query = {k: _text(v) for k, v in first.params.items()}
    auth = source.auth
    if auth is not None and auth.type == "api_key" and auth.in_ == "query":
        query[auth.name] = REDACTED
    url = first.url + (
        ("&" if urlsplit(first.url).query else "?") + _encode(query) if query else ""
    )
    kind = source.paginate.type
    if kind == "none":
        pages = "1"
    elif sequential(source.paginate):
        pages = f"{kind}: unknown until fetched, one after another"
    else:
        pages = f"{kind}: unknown until the first page, then the rest in parallel"
    parent = source.parent
    return SourcePlan(
        name=source.name,
        parent=parent,
        method=source.method,
        url=pipeline.redact(url),
        body=None if first.body is None else _shortened(pipeline.redact(_json_text(first.body))),
        host=(urlsplit(source.url).hostname or "").lower(),
        write=source.write,
        primary_key=list(source.key_fields),
        auth=None if auth is None else _auth_text(auth),
        headers=sorted({*pipeline.defaults.headers, *source.headers}, key=str.lower),
        pagination=kind,
        pages=pages,
        runs=runs,
        requests=requests,
        min_requests=1 if parent is None else 0,
        tables=[
            f"{u.field} -> {u.table} ("
            + "".join(f"{c}: {f}, " for c, f in u.include_parent.items())
            + f"position in {u.index})"
            for u in source.unnest
        ],
        credentials=max(1, len(_credentials(auth))),
    )


_BODY_SHOWN = 300


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _shortened(text: str) -> str:
    return text if len(text) <= _BODY_SHOWN else text[: _BODY_SHOWN - 3] + "..."


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _encode(query: Mapping[str, str]) -> str:
    return urlencode(query, safe="{}:,")


def _host_plans(
    pipeline: PipelineSpec, plans: list[SourcePlan], latency: float | None
) -> list[HostPlan]:
    limits = pipeline.limits()
    by_host: dict[str, list[SourcePlan]] = {}
    for plan in plans:
        by_host.setdefault(plan.host, []).append(plan)
    out = []
    for host, sources in by_host.items():
        hl = limits.for_host(host)
        complete = all(s.requests is not None for s in sources)
        n = sum(s.requests if s.requests is not None else s.min_requests for s in sources)
        # Sources that share a list of credentials share each one's limits (the usual case:
        # one auth for the host); each credential goes by the host's limits.
        lanes = max(s.credentials for s in sources)
        seconds = 0.0
        if hl.max_per_second is not None:
            seconds = max(0, n - hl.burst * lanes) / (hl.max_per_second * lanes)
        if latency is not None and n:
            per_host = hl.max_concurrency * lanes if hl.max_concurrency else limits.max_concurrency
            slots = min(per_host, limits.max_concurrency)
            seconds = max(seconds, math.ceil(n / slots) * latency)
            for s in sources:
                if s.pagination != "none" and s.requests is not None and s.runs:
                    # Pages of one run follow one another, unless the first tells the total:
                    # then the rest go out together after it.
                    chain = s.requests / s.runs
                    if not sequential(pipeline.source(s.name).paginate):
                        chain = min(chain, 2)
                    seconds = max(seconds, chain * latency)
        out.append(
            HostPlan(host, hl.max_concurrency, hl.max_per_second, n, complete, seconds, lanes)
        )
    return out


# --- text -------------------------------------------------------------------------------------


def _counted(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1: ``3 requests``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def render(plan: Plan) -> str:
    """The plan as text for a terminal."""
    where = f" ({plan.file})" if plan.file else ""
    lines = [f"pipeline {plan.name}{where} -> {plan.destination}", ""]
    for number, s in enumerate(plan.sources, start=1):
        key = f" on {', '.join(s.primary_key)}" if s.primary_key else ""
        after = f", after {s.parent}" if s.parent else ""
        lines.append(f"{number}. {s.name} ({s.write}{key}{after})")
        lines.append(f"   {s.method} {s.url}")
        if s.body is not None:
            lines.append(f"   json {s.body}")
        extras = []
        if s.auth:
            extras.append(f"auth {s.auth}")
        if s.headers:
            extras.append(f"headers {', '.join(s.headers)} (values not shown)")
        if extras:
            lines.append(f"   {'; '.join(extras)}")
        lines.append(f"   pages: {s.pages}")
        for child in s.tables:
            lines.append(f"   unnest: {child}")
        if s.parent is not None:
            runs = "unknown until fetched" if s.runs is None else str(s.runs)
            lines.append(f"   runs: one per {s.parent} record ({runs})")
        if s.requests is not None:
            lines.append(f"   requests: {s.requests}")
        else:
            lines.append(f"   requests: unknown until fetched (at least {s.min_requests})")
        lines.append("")
    lines.append(f"limits: {plan.max_concurrency} requests at once over all hosts")
    for h in plan.hosts:
        parts = []
        if h.max_concurrency is not None:
            parts.append(f"{h.max_concurrency} at once")
        if h.max_per_second is not None:
            parts.append(f"{h.max_per_second:g}/s")
        limit = ", ".join(parts) or "no host limit"
        if h.credentials > 1 and parts:
            limit += f" per credential ({h.credentials})"
        count = _counted(h.requests, "request") if h.complete else f"at least {h.requests}"
        lines.append(f"  {h.host}: {limit}; {count}; at least {h.min_seconds:.1f} s")
    if plan.assumed:
        shown = ", ".join(f"{k} {v:g}" for k, v in plan.assumed.items())
        lines.append(f"assuming {shown}")
    if plan.requests is not None:
        total = _counted(plan.requests, "request")
    else:
        unknown = [s.name for s in plan.sources if s.requests is None]
        total = f"at least {_counted(plan.min_requests, 'request')}; unknown until fetched: "
        total += ", ".join(unknown)
    lines.append(f"total: {total}; at least {plan.min_seconds:.1f} s")
    return "\n".join(lines)


def _auth_text(auth: Auth) -> str:
    """The auth type, and how many credentials when there are several (each with the host's
    limits: see the lanes of :mod:`fetchpipe.engine.lanes`)."""
    several = _credentials(auth)
    if len(several) > 1:
        return f"{auth.type}, {len(several)} credentials (the host's limits apply to each)"
    return auth.type


def _credentials(auth: Auth | None) -> Sequence[object]:
    """The credentials of ``auth`` when it may have several (a bearer's or an API key's)."""
    return auth.credentials() if isinstance(auth, BearerAuth | ApiKeyAuth) else ()
