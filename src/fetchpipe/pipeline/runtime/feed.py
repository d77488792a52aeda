"""The engine's input: a queue of page jobs that grows while results arrive.

A source's first page, the pages its paginator finds next and its children's pages are
queued here (:meth:`JobQueue.put`); :meth:`JobQueue.feed` turns them into requests for
:meth:`Fetcher.stream() <fetchpipe.Fetcher.stream>`, with the source's credentials on its own
origin, until no job is queued or in flight. A job of a source that failed meanwhile is
dropped; a next-page link to another host is checked before it is sent (:meth:`_link_refusal`).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

from fetchpipe._exceptions import FetchpipeError
from fetchpipe._models import Request
from fetchpipe.engine.security import SecurityPolicy, refused_addresses
from fetchpipe.pipeline.runtime.pagination import PaginationError
from fetchpipe.pipeline.runtime.source_run import PageJob, SourceRun


class JobQueue:
    """Page jobs waiting to be sent, and those in flight (by the key of their request)."""

    def __init__(self, security: SecurityPolicy, settle: Callable[[SourceRun], None]) -> None:
        """``settle`` is called for a job that is dropped before it is sent."""
        self._queue: collections.deque[PageJob] = collections.deque()
        self._jobs: dict[int, PageJob] = {}
        self._ids = 0
        self._wake = asyncio.Event()
        self._settle = settle
        self._security = security
        self._links_checked: dict[str, str | None] = {}
        """Host of a link found in a response -> why it is refused (None: allowed)."""

    def put(self, job: PageJob) -> None:
        """Queue ``job``; it counts as outstanding for its source until it is settled."""
        job.run.outstanding += 1
        self._queue.append(job)
        self._wake.set()

    def take(self, key: int) -> PageJob:
        """The job in flight whose request had ``key``: its result has come."""
        return self._jobs.pop(key)

    def source_of(self, key: object) -> str | None:
        """The source of the job in flight whose request has ``key`` (None: none is)."""
        job = self._jobs.get(key) if isinstance(key, int) else None
        return None if job is None else job.run.source.name

    def wake(self) -> None:
        """Let :meth:`feed` look again: a job was settled (the run may be over)."""
        self._wake.set()

    async def feed(self) -> AsyncIterator[Request]:
        """The engine's input: jobs as requests, until none is queued or in flight."""
        while True:
            while self._queue:
                job = self._queue.popleft()
                if job.run.failure is not None:
                    self._settle(job.run)
                    continue
                try:
                    request = await self._request(job)
                except FetchpipeError as exc:  # no credentials, or a refused link
                    job.run.fail(str(exc))
                    self._settle(job.run)
                    continue
                except Exception as exc:  # e.g. a URL the client cannot send: that source fails
                    job.run.fail(f"{job.where}: {type(exc).__name__}: {exc}")
                    self._settle(job.run)
                    continue
                yield request
            if not self._jobs:
                return
            self._wake.clear()
            await self._wake.wait()

    async def _request(self, job: PageJob) -> Request:
        page = job.page
        if not page.send_credentials:  # a link to another origin, found in a response
            refused = await self._link_refusal(page.url)
            if refused is not None:
                raise PaginationError(f"{job.where}: {refused}")
        self._ids += 1
        self._jobs[self._ids] = job
        source = job.run.source
        params = {k: _param_text(v) for k, v in page.params.items()}
        headers = dict(source.headers) if page.send_credentials else {}
        headers.update(page.headers or {})
        request = Request(
            page.url,
            method=source.method,
            headers=headers or None,
            params=params or None,
            json=page.body,
            key=self._ids,
            # Only GET and HEAD are sent again after a failure, unless the source says that
            # sending it twice is harmless: a POST may create or charge something each time.
            retry=source.method in ("GET", "HEAD") or source.idempotent,
            expect="bytes",  # parsed by the page reader, one page at a time (see .pages)
        )
        try:
            return await job.run.auth.apply(request, same_origin=page.send_credentials)
        except BaseException:
            del self._jobs[self._ids]
            raise

    async def _link_refusal(self, url: str) -> str | None:
        """Why a link to another origin found in a response may not be fetched: its host is
        (or resolves to) a loopback, private, link-local or metadata address that is not in
        ``allow_addresses``. Checked whatever ``block_private`` says (an SSRF guard)."""
        host = urlsplit(url).hostname or ""
        if host in self._links_checked:
            return self._links_checked[host]
        policy = dataclasses.replace(self._security, block_private=True)
        reason: str | None = None
        try:
            refused = await refused_addresses(policy, host, every_address=True)
        except (OSError, UnicodeError, ValueError) as exc:
            text = getattr(exc, "strerror", None) or exc
            reason = f"its host {host!r} does not resolve ({text})"
        else:
            if refused:
                address, why = refused[0]
                reason = (
                    f"the next page link goes to {host!r}, which is {address}, a {why}; not "
                    "followed. HINT: add the address to defaults.security.allow_addresses if "
                    "this is expected"
                )
        self._links_checked[host] = reason
        return reason


def _param_text(value: str | int | float | bool) -> str | int | float:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value
