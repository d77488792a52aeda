"""Run ids, and resuming a run that never ended from what its journal kept.

A run that never ended (the process died, or was stopped, or a host was down) is resumed by
the next run of the pipeline on the destination, if that run asks for the same sources with
the same file (:func:`begin`): the pages it had committed are counted and not fetched again;
the pages they led to are (:func:`count_committed`, :func:`restored_jobs`). The journal keeps
each job without its secrets (:class:`JobCodec`): with its json body and its own headers, so
that a cursor sent in the body or in a header resumes at the page it had reached.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from fetchpipe._exceptions import ConfigError
from fetchpipe._log import new_run_id as new_run_id  # run ids: fetch's too
from fetchpipe._redact import SecretTokens
from fetchpipe.destinations.pipelines.journal import JournalJob, PageEntry, RunRecord
from fetchpipe.engine.security import without_params
from fetchpipe.pipeline.runtime.destination import DestinationThread
from fetchpipe.pipeline.runtime.pagination import PageRequest
from fetchpipe.pipeline.runtime.records import greater_cursor
from fetchpipe.pipeline.runtime.source_run import PageJob, SourceRun

_UNSET: Any = object()


async def begin(
    thread: DestinationThread, new: RunRecord, *, restart: bool, sources: list[str]
) -> tuple[RunRecord, list[PageEntry]]:
    """Resume the unfinished run of ``new``'s pipeline, or begin ``new``: the run, and the
    pages it had committed (none for ``new``). With ``restart``, an unfinished run is ended
    as abandoned (``sources`` are the pipeline's sources) and ``new`` begins."""
    destination = thread.destination
    unfinished = await thread.call(destination.unfinished_run, new.pipeline)
    if unfinished is not None and restart:
        await thread.call(destination.end_run, unfinished.run_id, "abandoned", sources)
        unfinished = None
    if unfinished is None:
        await thread.call(destination.begin_run, new)
        return new, []
    _check_resumable(unfinished, new.config_hash, new.selected, new.full_refresh)
    return unfinished, await thread.call(destination.committed_pages, unfinished.run_id)


def _check_resumable(
    run: RunRecord, config_hash: str, select: tuple[str, ...] | None, full_refresh: bool
) -> None:
    """A ConfigError when the unfinished run cannot be resumed as asked."""
    hint = "HINT: run with --restart to drop it and start over"
    if run.config_hash != config_hash:
        raise ConfigError(
            f"run {run.run_id} of this pipeline did not finish (it was interrupted, or a host "
            f"was down), and the pipeline file has changed since it started, so it cannot be "
            f"resumed (a fetchpipe upgrade that adds settings counts as a change). {hint}"
        )
    if (run.selected, run.full_refresh) != (select, full_refresh):
        was = f"--select {','.join(run.selected)}" if run.selected else "all sources"
        if run.full_refresh:
            was += " --full-refresh"
        raise ConfigError(
            f"run {run.run_id} of this pipeline did not finish; it ran {was}. Run with the "
            f"same options to resume it. {hint}"
        )


def count_committed(
    committed: Iterable[PageEntry], runs: Mapping[str, SourceRun]
) -> collections.defaultdict[str, set[str]]:
    """Count the committed pages of the resumed run into their sources (pages, records,
    cursor), and return their keys by source: these pages are never fetched again."""
    committed_keys: collections.defaultdict[str, set[str]] = collections.defaultdict(set)
    for entry in committed:
        run = runs.get(entry.source)
        if run is None or run.ended_earlier:
            continue
        committed_keys[entry.source].add(entry.key)
        run.report.pages += 1
        run.report.records += entry.records
        run.report.cached_pages += entry.cached
        run.changed = run.changed or not entry.cached
        if run.cursor_rule is not None and entry.cursor is not None:
            run.cursor = greater_cursor(run.cursor, entry.cursor, run.cursor_rule)
    return committed_keys


def restored_jobs(
    committed: Iterable[PageEntry],
    runs: Mapping[str, SourceRun],
    committed_keys: Mapping[str, set[str]],
    codec: JobCodec,
) -> Iterator[PageJob]:
    """The jobs the committed pages led to that are not committed themselves, each once."""
    queued: set[tuple[str, str]] = set()
    for entry in committed:
        for job in entry.jobs:
            run = runs.get(job.source)
            if run is None or run.ended_earlier or job.key in committed_keys[job.source]:
                continue
            if (job.source, job.key) in queued:
                continue
            queued.add((job.source, job.key))
            yield codec.restored(run, job)


class JobCodec:
    """A page job as the journal keeps it (:meth:`journaled`), and back (:meth:`restored`)."""

    def __init__(self, secret_tokens: SecretTokens) -> None:
        self._secret_tokens = secret_tokens
        """How the journal stores a secret left in a URL (see :meth:`journaled`)."""

    def journaled(self, job: PageJob) -> JournalJob:
        """``job`` as the journal keeps it, without a secret: the source's own parameters are
        left out (they come back from the configuration, so a rotated secret still works),
        credential query parameters are dropped from the URL (the authenticator adds them),
        and any secret value left in a URL or a json body is replaced by a token naming its
        hash."""
        run = job.run
        hide = run.secret_params
        url = without_params(job.page.url, hide, any_case=False) if hide else job.page.url
        extra = {k: v for k, v in job.page.params.items() if run.params.get(k, _UNSET) != v}
        inherit = tuple(k for k in job.page.params if k not in extra)
        tokens = self._secret_tokens
        return JournalJob(
            source=run.source.name,
            url=tokens.hide(url),
            params=extra,
            inherit=inherit,
            number=job.page.number,
            send_credentials=job.page.send_credentials,
            base=tokens.hide(job.base),
            parallel=job.paginator.parallel,
            include=job.include,
            body=_each_text(job.page.body, tokens.hide),
            headers=_each_text(job.page.headers, tokens.hide),
        )

    def restored(self, run: SourceRun, job: JournalJob) -> PageJob:
        """A job read back from the journal, with its secrets put back (see :meth:`journaled`)."""
        reveal = self._secret_tokens.reveal
        base = reveal(job.base)
        body = _each_text(job.body, reveal)
        # The page's body is its paginator's too: a cursor set in it is set again by the next.
        paginator, _ = run.paginator(base, body)
        paginator.issued = job.number
        paginator.parallel = job.parallel
        params = {**{k: run.params[k] for k in job.inherit if k in run.params}, **job.params}
        page = PageRequest(
            reveal(job.url),
            params,
            job.number,
            job.send_credentials,
            body=body,
            headers=_each_text(job.headers, reveal),
        )
        return PageJob(run, paginator, page, base, job.include)


def _each_text(value: Any, change: Callable[[str], str]) -> Any:
    """``value`` (JSON data) with ``change`` applied to each of its strings, keys included."""
    if isinstance(value, str):
        return change(value)
    if isinstance(value, Mapping):
        return {change(str(k)): _each_text(v, change) for k, v in value.items()}
    if isinstance(value, list):
        return [_each_text(v, change) for v in value]
    return value
