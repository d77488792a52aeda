"""Reading a fetched page: its records, the pages it leads to, its children's first pages.

A page's body is parsed here, not by the engine's workers: results waiting in the engine's
queue stay compact bytes, and one parsed page at a time is alive. Its records go to the
source's spool (each ``unnest`` list taken out, into its table's spool: :mod:`.unnest`), its
journal row waits for the next commit, and the jobs it leads to are
queued: the source's next pages (all at once when the first page tells the total) and, for
each child source, one first page per record (a streaming fan-out: the children start while
the parent's pages are still coming).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from fetchpipe._models import Provenance, Result
from fetchpipe.destinations.pipelines.journal import PageEntry
from fetchpipe.pipeline.runtime.feed import JobQueue
from fetchpipe.pipeline.runtime.pagination import Page
from fetchpipe.pipeline.runtime.records import (
    RecordsError,
    extract_records,
    graphql_errors,
    greater_cursor,
    latest_cursor,
    render_json,
    render_url,
)
from fetchpipe.pipeline.runtime.resume import JobCodec
from fetchpipe.pipeline.runtime.source_run import PageJob, SourceRun
from fetchpipe.pipeline.runtime.unnest import split_records
from fetchpipe.pipeline.spec.paths import MISSING, get_path

_FROM_CACHE = frozenset({Provenance.CACHE, Provenance.REVALIDATED})


class PageReader:
    """Reads pages into their source runs and queues the jobs they lead to."""

    def __init__(self, queue: JobQueue, codec: JobCodec, committed: Mapping[str, set[str]]) -> None:
        """``committed``: keys of the pages a resumed run had committed, by source."""
        self._queue = queue
        self._codec = codec
        self._committed = committed

    def read(self, job: PageJob, result: Result, *, follow: bool = True) -> None:
        """Read the page of ``job`` (a successful ``result``). RecordsError or PaginationError
        when it does not hold what the source says it holds. ``follow`` False: journal the
        pages it leads to without queueing them (a suspended source: the next run does)."""
        run, source, report = job.run, job.run.source, job.run.report
        body = _parse_json(result.body)
        errors = graphql_errors(body)
        if errors is not None:
            raise RecordsError(errors)
        records = extract_records(body, source.records)
        if job.include:
            include = job.include
            records = [{**r, **include} for r in records]
        rows, tables = records, None
        if source.unnest and run.spool is not None:  # before anything is counted or queued
            rows, tables = split_records(records, source.unnest, run.spool.count)
        page_cursor = None
        if run.cursor_rule is not None:
            page_cursor = latest_cursor(records, run.cursor_rule, None)
            run.cursor = greater_cursor(run.cursor, page_cursor, run.cursor_rule)
        cached = result.source in _FROM_CACHE
        report.pages += 1
        report.records += len(records)
        report.cached_pages += cached
        run.changed = run.changed or not cached
        if run.spool is not None:
            run.spool.add(rows)
            for table, child_rows in (tables or {}).items():
                run.tables[table].add(child_rows)
        page = Page(job.page, result.final_url or job.page.url, result.headers, body, len(records))
        following = [
            PageJob(run, job.paginator, request, job.base, job.include)
            for request in job.paginator.next(page)
        ]
        children = [c for child in run.children for c in _fan_out(child, records)]
        jobs = (*following, *children)
        journaled = [self._codec.journaled(j) for j in jobs]
        entry = PageEntry(
            source.name,
            self._codec.journaled(job).key,
            len(records),
            cached,
            page_cursor,
            journaled,
        )
        run.entries.append(entry)
        if not follow:
            return
        committed = self._committed
        for next_job, stored in zip(jobs, journaled, strict=True):
            # After a restart, a page fetched again may lead to pages committed before the
            # interruption (another source's commits run on their own clock): not again.
            if committed and stored.key in committed[stored.source]:
                continue
            self._queue.put(next_job)


def _fan_out(child: SourceRun, records: list[dict[str, Any]]) -> list[PageJob]:
    """The child's first page for each parent record; none when the child fails."""
    if child.failure is not None or child.ended_earlier:
        return []
    template, parent = child.source.url, child.parent
    assert parent is not None
    include_paths = child.source.include_parent
    jobs = []
    try:
        for record in records:
            parents = {parent.source.name: record}
            url = render_url(template, parents)
            body = render_json(child.source.body, parents)
            include = None
            if include_paths:
                include = {}
                for name, path in include_paths.items():
                    value = get_path(record, path)
                    if value is MISSING:
                        raise RecordsError(f"include_parent {name}: the parent has no {path!r}")
                    include[name] = value
            paginator, first = child.paginator(url, body)
            jobs.append(PageJob(child, paginator, first, url, include))
    except RecordsError as exc:
        child.fail(str(exc))
        return []
    return jobs


def _parse_json(body: Any) -> Any:
    if not body:
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        preview = bytes(body[:60]).decode("utf-8", "replace")
        raise RecordsError(
            f"the response is not valid JSON ({exc}); it starts {preview!r}"
        ) from None
