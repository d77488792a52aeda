"""What ``fetchpipe init`` found, as one frozen value, and the notes it prints. Pure.

:func:`conclude` puts the guesses together once the probe has fetched the first page and tried
the pagination candidates (each :class:`Trial`): the primary key and the incremental field are
guessed over the records of both pages, so that a key unique on one page only is not taken.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from fetchpipe.pipeline.scaffold.paging_guess import Candidate, Outlook, Verdict
from fetchpipe.pipeline.scaffold.records_guess import (
    IncrementalGuess,
    KeyGuess,
    RecordsGuess,
    guess_incremental,
    guess_key,
)

MAX_PROBES = 5
"""Second-page requests at most: each candidate costs one."""


@dataclass(frozen=True, slots=True)
class Trial:
    """A pagination candidate and what its second page showed."""

    candidate: Candidate
    verdict: Verdict


@dataclass(frozen=True, slots=True)
class Detection:
    """Everything found: the records, their key, an incremental field, the pagination."""

    name: str
    records: RecordsGuess
    record_count: int
    key: KeyGuess
    incremental: IncrementalGuess
    outlook: Outlook
    trials: tuple[Trial, ...]

    @property
    def paginate(self) -> Candidate | None:
        """The confirmed pagination, if any."""
        return next((t.candidate for t in self.trials if t.verdict.confirmed), None)

    @property
    def confirmation(self) -> str | None:
        return next((t.verdict.why for t in self.trials if t.verdict.confirmed), None)

    @property
    def untried(self) -> tuple[Candidate, ...]:
        return self.outlook.candidates[len(self.trials) :]

    def notes(self) -> tuple[list[str], list[str]]:
        """What was detected, and what could not be, as lines for a person."""
        found: list[str] = []
        missed: list[str] = []
        (found if self.records.found else missed).append(f"records: {self.records.why}")
        if self.key.field is not None:
            found.append(f"primary key: {self.key.why}")
        else:
            missed.append(f"primary key: {self.key.why}")
        paginate = self.paginate
        if paginate is not None:
            found.append(
                f"pagination: {paginate.type} ({paginate.why}); confirmed: {self.confirmation}"
            )
        elif self.outlook.single_page is not None:
            found.append(f"pagination: none, everything is in one response: "
                         f"{self.outlook.single_page}")  # fmt: skip
        elif not self.trials:
            missed.append("pagination: nothing in the response speaks of pages; none written")
        elif all(t.candidate.blind for t in self.trials):
            tried = " and ".join(_short(t.candidate) for t in self.trials)
            missed.append(
                f"pagination: none found: nothing in the response speaks of pages, and {tried}, "
                "tried blind, did not give other records; none written"
            )
        else:
            tried = "; ".join(f"{_short(t.candidate)}: {t.verdict.why}" for t in self.trials)
            missed.append(f"pagination: could not confirm any ({tried}); none written")
        inc = self.incremental
        if inc.field is None:
            missed.append(f"incremental: {inc.why}")
        elif inc.param is not None:
            found.append(f"incremental: {inc.why}; the URL filters it with {inc.param}=")
        else:
            missed.append(
                f"incremental: {inc.why}, but the request parameter that filters by it is not "
                "in the response: written commented out"
            )
        return found, missed


def _short(candidate: Candidate) -> str:
    block = candidate.as_dict()
    shown = ", ".join(f"{k}={v}" for k, v in block.items() if k != "type")
    return f"{candidate.type} ({shown})" if shown else candidate.type


def conclude(
    name: str,
    records: RecordsGuess,
    first_records: Sequence[Mapping[str, Any]],
    outlook: Outlook,
    trials: Sequence[Trial],
    second_records: Sequence[Mapping[str, Any]] = (),
    query: Sequence[tuple[str, str]] = (),
) -> Detection:
    """The :class:`Detection` of a first page's ``first_records`` (at ``records``), the
    candidates of its ``outlook`` and the ``trials`` made (``second_records``: the records of
    the confirming page, if one did)."""
    seen = [*first_records, *second_records]
    return Detection(
        name=name,
        records=records,
        record_count=len(first_records),
        key=guess_key(seen, name),
        incremental=guess_incremental(seen, query),
        outlook=outlook,
        trials=tuple(trials),
    )


def name_from_url(url: str) -> str:
    """A pipeline and source name from the URL's path: its last segment that is not a number
    or a version (``products`` for ``/shop/v1/page/products``), as an identifier."""
    segments = [unquote(s) for s in urlsplit(url).path.split("/") if s]
    for segment in reversed(segments):
        word = re.sub(r"\.(json|xml)\Z", "", segment, flags=re.IGNORECASE)
        if re.fullmatch(r"\d+|v\d+(\.\d+)*|\{.*\}", word, flags=re.IGNORECASE):
            continue
        name = re.sub(r"[^0-9A-Za-z_]+", "_", word).strip("_").lower()
        if name:
            return name if not name[0].isdigit() else f"_{name}"
    host = urlsplit(url).hostname or ""
    name = re.sub(r"[^0-9A-Za-z_]+", "_", host.split(".")[0]).strip("_").lower()
    return name if name and name.isidentifier() and name.isascii() else "records"
