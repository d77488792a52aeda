"""The comparison clients of ``fetchpipe bench pipeline``, each run as its own process.

``python -P pipeline_baselines.py REPORT CLIENT BASE_URL DATABASE WORKDIR``, where CLIENT is:

- ``floor``: the hand-rolled loop the issue measured. One aiohttp session fetches page 1, reads
  ``total_pages``, then fetches the other pages at once under a semaphore of 100; each page is
  parsed with orjson and its records written as JSON lines to one file, which DuckDB then loads
  in one statement (``read_json``), keeping one row per ``id`` (the merge, on a fresh file).
- ``dlt``: dlt's ``rest_api`` source (page-number paginator, ``total_pages`` from the body,
  merge on ``id``) into a DuckDB file, with dlt's working files under WORKDIR and its telemetry
  off.

At exit the process writes ``{"peak_rss_mb": ...}`` to REPORT: its own ``VmHWM``.

The file is run by path with ``-P`` and imports neither fetchpipe nor anything the client does
not use, so each process costs what that client costs and nothing of fetchpipe's.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from pathlib import Path
from typing import Any, BinaryIO

CONCURRENCY = 100
TABLE = "products"
DLT_DATASET = "products_api"


def peak_rss_mb() -> float | None:
    """This process's peak resident set size in MB (``VmHWM``), or ``None`` off Linux."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


# --- floor: aiohttp + orjson + JSON lines + one read_json ---------------------------------------


async def _fetch_all(base_url: str, out: BinaryIO) -> None:
    import aiohttp
    import orjson

    url = f"{base_url}/{TABLE}"
    semaphore = asyncio.Semaphore(CONCURRENCY)
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def page(number: int) -> dict[str, Any]:
            async with semaphore, session.get(url, params={"page": number}) as response:
                response.raise_for_status()
                body: dict[str, Any] = orjson.loads(await response.read())
            out.write(b"".join(orjson.dumps(record) + b"\n" for record in body["data"]))
            return body

        first = await page(1)
        await asyncio.gather(*(page(n) for n in range(2, int(first["total_pages"]) + 1)))


def _run(coroutine: Any) -> None:
    """On uvloop when it is installed, as fetchpipe runs."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coroutine)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(coroutine)


def floor(base_url: str, database: Path, workdir: Path) -> None:
    import duckdb

    lines = workdir / "records.jsonl"
    with lines.open("wb") as out:
        _run(_fetch_all(base_url, out))
    with duckdb.connect(str(database)) as con:
        con.execute(
            f"CREATE TABLE {TABLE} AS SELECT * FROM read_json(?, format = 'newline_delimited') "
            "QUALIFY row_number() OVER (PARTITION BY id) = 1",
            [str(lines)],
        )


# --- dlt: the rest_api source ------------------------------------------------------------------


def dlt_config(base_url: str) -> dict[str, Any]:
    """The ``rest_api_source`` configuration of the products endpoint."""
    return {
        "client": {
            "base_url": f"{base_url}/",
            "paginator": {
                "type": "page_number",
                "base_page": 1,
                "page_param": "page",
                "total_path": "total_pages",
            },
        },
        "resource_defaults": {"primary_key": "id", "write_disposition": "merge"},
        "resources": [{"name": TABLE, "endpoint": {"path": TABLE, "data_selector": "data"}}],
    }


def dlt(base_url: str, database: Path, workdir: Path) -> None:
    # Imported by name: dlt is optional and never a dependency of fetchpipe.
    dlt_ = importlib.import_module("dlt")
    rest_api = importlib.import_module("dlt.sources.rest_api")
    pipeline = dlt_.pipeline(
        pipeline_name="bench",
        pipelines_dir=str(workdir / "dlt-pipelines"),
        destination=dlt_.destinations.duckdb(str(database)),
        dataset_name=DLT_DATASET,
    )
    pipeline.run(rest_api.rest_api_source(dlt_config(base_url)))


CLIENTS = {"floor": floor, "dlt": dlt}


def main(argv: list[str]) -> None:
    report, client, base_url, database, workdir = argv[:5]
    CLIENTS[client](base_url, Path(database), Path(workdir))
    Path(report).write_text(json.dumps({"peak_rss_mb": peak_rss_mb()}))


if __name__ == "__main__":
    main(sys.argv[1:])
