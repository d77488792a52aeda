"""The seed's gather script as a program of its own: ``python -P seed_gather.py URLS``.

``asyncio.gather`` of one aiohttp GET per URL (one line of the file URLS each) over one session,
no limits, every body parsed as JSON: the seed's async code, as the ``gather`` row of
``fetchpipe bench seed`` runs it in-process, here with ``asyncio.run`` as a script would.
``fetchpipe bench startup`` times it from spawn to exit next to ``fetchpipe fetch URLS``.

It is run by path with ``-P`` and imports nothing of fetchpipe, so the process costs what the
seed's script costs. It prints ``N ok, M failed`` and exits 1 when a request failed. The
``gather`` rows of the other benchmarks (seed, memory, faults, dead and flaky API) call
:func:`gather` in-process: one copy of the naive client they are all measured against.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import aiohttp


async def fetch(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url) as response:
        response.raise_for_status()
        return await response.json()


async def gather(urls: list[str]) -> list[Any]:
    async with aiohttp.ClientSession() as session:
        return await asyncio.gather(*(fetch(session, u) for u in urls), return_exceptions=True)


def main(path: str) -> int:
    with open(path, encoding="utf-8") as lines:
        urls = [line.strip() for line in lines if line.strip()]
    results = asyncio.run(gather(urls))
    failed = sum(isinstance(result, BaseException) for result in results)
    print(f"{len(urls) - failed} ok, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
