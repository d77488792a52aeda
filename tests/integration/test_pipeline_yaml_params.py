"""A pipeline file's YAML 1.1 look-alikes reach the API as written: ``country: NO`` is sent as
``country=NO``, not ``country=false``."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestServer

from fetchpipe.pipeline import Pipeline


async def test_yaml_words_and_zero_padded_numbers_are_sent_as_written(tmp_path: Path) -> None:
    seen: list[str] = []

    async def items(request: web.Request) -> web.Response:
        seen.append(request.query_string)
        return web.json_response({"items": [{"id": 1, "country": request.query["country"]}]})

    app = web.Application()
    app.router.add_get("/items", items)
    async with TestServer(app, host="127.0.0.1") as server:
        file = tmp_path / "pipeline.yaml"
        file.write_text(
            "name: countries\n"
            f"destination: jsonl:///{tmp_path / 'out'}\n"
            "sources:\n"
            "  - name: items\n"
            f"    url: {server.make_url('/items')}\n"
            "    params: {country: NO, express: yes, gift: off, zip: 01234, n: 0x10, new: true}\n"
            "    records: items\n"
        )
        report = await Pipeline.from_file(file).arun()
    assert report.ok, [(s.name, s.reason) for s in report.failed]
    assert seen == ["country=NO&express=yes&gift=off&zip=01234&n=16&new=true"]
    (written,) = (tmp_path / "out" / "items").glob("*.jsonl")
    assert '"country":"NO"' in written.read_text().replace(" ", "")
