"""The requests of ``fetchpipe init``: the URL once, then a second page per pagination
candidate until one is confirmed (at most :data:`~.detection.MAX_PROBES`), one at a time.

They go through the engine's :class:`~fetchpipe.engine.fetcher.Fetcher`, as a run's do: the
environment's proxies (or the ones given), the TLS settings, timeouts, a retry for a timeout
or a 503. Bodies are read as JSON whatever their content type, as the runtime reads pages.
Every message that may quote a URL or a header is cleaned of the secrets given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson

from fetchpipe._config import Limits, Timeouts
from fetchpipe._exceptions import FetchpipeError
from fetchpipe._models import Request, Result
from fetchpipe._redact import redact_text
from fetchpipe.engine.fetcher import Fetcher
from fetchpipe.engine.proxies import ProxyPolicy
from fetchpipe.engine.retry import RetryPolicy
from fetchpipe.engine.security import origin
from fetchpipe.engine.tls import TlsPolicy
from fetchpipe.pipeline.runtime.pagination import PageRequest
from fetchpipe.pipeline.runtime.records import RecordsError, extract_records
from fetchpipe.pipeline.scaffold.credentials import Prepared
from fetchpipe.pipeline.scaffold.detection import MAX_PROBES, Detection, Trial, conclude
from fetchpipe.pipeline.scaffold.paging_guess import (
    Verdict,
    judge,
    outlook,
    second_request,
)
from fetchpipe.pipeline.scaffold.records_guess import find_records, guess_key
from fetchpipe.pipeline.scaffold.response import Response

_PREVIEW = 80


class ProbeError(FetchpipeError):
    """The first response cannot be used: no answer, an error status, or no JSON."""


@dataclass(frozen=True, slots=True)
class Network:
    """How the requests are sent: proxies, TLS, the per-attempt timeout."""

    proxy: ProxyPolicy | str = "env"
    tls: TlsPolicy | None = None
    timeout: float = 30.0


async def detect(prepared: Prepared, name: str, network: Network) -> Detection:
    """Fetch the URL, guess, try the pagination candidates; the :class:`Detection`."""
    fetcher = Fetcher(
        limits=Limits(max_concurrency=1),
        retry=RetryPolicy(attempts=2, wait_initial=0.5, wait_max=2.0, retry_after_max=10.0),
        timeouts=Timeouts(
            connect=min(10.0, network.timeout),
            read=network.timeout,
            total=network.timeout,
            deadline=network.timeout * 2 + 5,
        ),
        proxy=network.proxy,
        tls=network.tls,
    )
    async with fetcher:
        return await _detect(fetcher, prepared, name)


async def _detect(fetcher: Fetcher, prepared: Prepared, name: str) -> Detection:
    secrets = prepared.secrets
    first_result = await _send(fetcher, Request(prepared.url, headers=prepared.headers or None))
    first = _response(first_result, secrets, what="the URL")
    records = find_records(first.body, name)
    try:
        first_records = extract_records(first.body, records.path)
    except RecordsError as exc:
        raise ProbeError(f"the URL's answer holds no records: {exc}") from None
    whole_body = records.path == "" and isinstance(first.body, list)
    query = prepared.query
    found = outlook(first, query, len(first_records), whole_body, blind=records.found)
    key = guess_key(first_records, name).field
    base = _without_query(prepared.url)
    trials: list[Trial] = []
    second: Sequence[Mapping[str, Any]] = ()
    for candidate in found.candidates[:MAX_PROBES]:
        owned = {*candidate.owned, *(p[0] for p in [prepared.auth_param] if p)}
        params = {n: v for n, v in query if n not in owned}
        request = second_request(candidate, base, params, first, len(first_records))
        if isinstance(request, str):
            trials.append(Trial(candidate, Verdict(False, redact_text(request, secrets))))
            continue
        page, failure = await _second_page(fetcher, prepared, request, records.path)
        verdict = judge(candidate, first_records, page, key, failure)
        trials.append(Trial(candidate, verdict))
        if verdict.confirmed:
            second = page or ()
            break
    return conclude(name, records, first_records, found, trials, second, query)


async def _second_page(
    fetcher: Fetcher, prepared: Prepared, page: PageRequest, path: str
) -> tuple[list[dict[str, Any]] | None, str | None]:
    """The records of a candidate's second page, or why there are none."""
    same_origin = origin(page.url) == origin(prepared.url)
    headers = dict(prepared.headers) if same_origin else {}
    headers.update(page.headers or {})
    params = {k: _text(v) for k, v in page.params.items()}
    if prepared.auth_param is not None and same_origin:
        params[prepared.auth_param[0]] = prepared.auth_param[1]
    result = await _send(fetcher, Request(page.url, headers=headers or None, params=params or None))
    try:
        response = _response(result, prepared.secrets, what="the second page")
        return extract_records(response.body, path), None
    except (ProbeError, RecordsError) as exc:
        return None, redact_text(str(exc), prepared.secrets)


async def _send(fetcher: Fetcher, request: Request) -> Result:
    request = Request(
        request.url,
        headers=request.headers,
        params=request.params,
        retry=True,
        expect="bytes",
    )
    results = [result async for result in fetcher.stream([request])]
    return results[0]


def _response(result: Result, secrets: frozenset[str], *, what: str) -> Response:
    """The result as a :class:`Response`, or ProbeError saying what is wrong with it."""
    if result.status is None:
        message = redact_text(result.error_message or str(result.error), secrets)
        raise ProbeError(f"{what} could not be fetched: {message}")
    body = result.body if isinstance(result.body, bytes | bytearray | memoryview) else b""
    if not 200 <= result.status < 300:
        preview = redact_text(bytes(body[:_PREVIEW]).decode("utf-8", "replace"), secrets)
        hint = ""
        if result.status in (401, 403):
            hint = (
                " HINT: give the credentials with -H 'Authorization: Bearer ${TOKEN}' or in the URL"
            )
        raise ProbeError(
            f"{what} answered HTTP {result.status}" + (f": {preview!r}" if preview else "") + hint
        )
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        preview = redact_text(bytes(body[:_PREVIEW]).decode("utf-8", "replace"), secrets)
        kind = result.headers.get("Content-Type", "no content type")
        raise ProbeError(
            f"{what} did not answer JSON ({kind}; it starts {preview!r}). HINT: init reads "
            "JSON APIs; give the URL of a JSON endpoint"
        ) from None
    if parsed is None:
        raise ProbeError(f"{what} answered an empty body (or null): nothing to look at")
    final = result.final_url or result.request.url
    return Response(final, result.status, parsed, result.headers)


def _without_query(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _text(value: str | int | float | bool) -> str | int | float:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value
