"""Reading request lists: line parsing, validation messages, streaming, stdin spooling."""

from __future__ import annotations

import io
import json
import tracemalloc
from pathlib import Path

import pytest

from fetchpipe._exceptions import InputError
from fetchpipe._models import Request
from fetchpipe.cli.input import (
    InputFile,
    LineError,
    check_url,
    iter_requests,
    parse_header,
    parse_line,
    parse_rate,
    shown_url,
)

SECRET = "s3cr3t-value"


def _requests(text: str, name: str = "urls.txt") -> list[Request]:
    return list(iter_requests(io.BytesIO(text.encode()), name))


@pytest.mark.parametrize("line", ["", "   ", "\n", "# comment", "   # indented comment"])
def test_blank_lines_and_comments_are_skipped(line: str) -> None:
    assert parse_line(line) is None


def test_plain_url() -> None:
    assert parse_line("  https://api.example.com/items?page=2#top \r\n") == Request(
        url="https://api.example.com/items?page=2#top"
    )


def test_json_line_with_every_field() -> None:
    line = (
        '{"url": "http://127.0.0.1:8080/x", "method": "post", "headers": {"X-A": "1"}, '
        '"key": 42, "params": {"q": "a", "n": 2, "f": 1.5}, "json": {"k": [1, null]}}'
    )

    assert parse_line(line) == Request(
        url="http://127.0.0.1:8080/x",
        method="POST",
        headers={"X-A": "1"},
        key=42,
        params={"q": "a", "n": 2, "f": 1.5},
        json={"k": [1, None]},
    )


@pytest.mark.parametrize("key", ["user-1", 7, None])
def test_json_key_may_be_str_int_or_missing(key: object) -> None:
    request = parse_line(json.dumps({"url": "https://x.example", "key": key}))

    assert request is not None
    assert request.key == key


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://example.com/file", r"is not an http\(s\) URL"),
        ("example.com/path", r"is not an http\(s\) URL"),
        ("mailto:someone@example.com", r"is not an http\(s\) URL"),
        ("http://", "has no host"),
        ("http:///path", "has no host"),
        ("http://example.com:99999/", "is not a valid URL"),
        ("http://example.com/a b", "contains whitespace"),
    ],
)
def test_bad_urls(url: str, problem: str) -> None:
    with pytest.raises(LineError, match=problem) as caught:
        check_url(url)

    assert "HINT:" in str(caught.value)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"url": "http://x.example", ', "invalid JSON"),
        ("[1, 2]", "a JSON array is not a request"),
        ('{"method": "GET"}', "'url' is missing"),
        ('{"url": 5}', "'url' must be a string"),
        ('{"url": "ftp://x.example"}', "is not an http"),
        ('{"url": "http://x.example", "header": {}}', "unknown field 'header'"),
        ('{"url": "http://x.example", "key": true}', "'key' must be a string or an integer"),
        ('{"url": "http://x.example", "key": 1.5}', "'key' must be a string or an integer"),
        ('{"url": "http://x.example", "key": [1]}', "'key' must be a string or an integer"),
        ('{"url": "http://x.example", "method": "GE T"}', "'method' must be an HTTP method"),
        ('{"url": "http://x.example", "method": 1}', "'method' must be an HTTP method"),
        ('{"url": "http://x.example", "headers": []}', "'headers' must be an object"),
        ('{"url": "http://x.example", "params": {"a": {"b": 1}}}', "param 'a' must be"),
        ('{"url": "http://x.example", "params": {"a": true}}', "param 'a' must be"),
        ('{"url": "http://x.example", "params": "a=1"}', "'params' must be an object"),
    ],
)
def test_bad_json_lines(line: str, problem: str) -> None:
    with pytest.raises(LineError, match=problem) as caught:
        parse_line(line)

    assert "HINT:" in str(caught.value)


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": 5},
        {"Bad Name": SECRET},
        {"X-Token": SECRET + "\r\nX-Injected: 1"},
    ],
)
def test_bad_headers_never_echo_the_value(headers: dict[str, object]) -> None:
    line = json.dumps({"url": "http://x.example", "headers": headers})

    with pytest.raises(LineError) as caught:
        parse_line(line)

    assert SECRET not in str(caught.value)


def test_error_names_file_and_line_number() -> None:
    text = "# list\n\nhttp://a.example/1\n{oops\nhttp://a.example/2\n"

    with pytest.raises(InputError) as caught:
        _requests(text, name="urls.txt")

    message = str(caught.value)
    assert message.startswith("urls.txt:4: invalid JSON")
    assert "HINT:" in message


def test_spec_example_message() -> None:
    with pytest.raises(InputError, match=r"^urls\.txt:3: 'ftp://x' is not an http\(s\) URL\. HINT"):
        _requests("http://a.example\nhttp://b.example\nftp://x\n")


def test_invalid_utf8_is_reported_with_its_line() -> None:
    data = b"http://a.example/\nhttp://b.example/\xff\n"

    with pytest.raises(InputError, match=r"^u\.txt:2: the line is not valid UTF-8"):
        list(iter_requests(io.BytesIO(data), "u.txt"))


def test_byte_order_mark_and_crlf_are_accepted() -> None:
    data = "\ufeffhttp://a.example/1\r\nhttp://a.example/2\r\n".encode()

    requests = list(iter_requests(io.BytesIO(data), "u.txt"))

    assert [r.url for r in requests] == ["http://a.example/1", "http://a.example/2"]


def test_shown_url_masks_passwords_and_shortens() -> None:
    assert shown_url("https://user:pw@host.example/x") == "https://user:***@host.example/x"
    assert len(shown_url("https://host.example/" + "a" * 200)) == 80


def test_password_in_a_bad_url_is_not_echoed() -> None:
    with pytest.raises(LineError) as caught:
        check_url(f"ftp://user:{SECRET}@host.example/")

    assert SECRET not in str(caught.value)


def test_parse_header() -> None:
    assert parse_header("Authorization:  Bearer abc ") == ("Authorization", "Bearer abc")
    assert parse_header("X-Empty:") == ("X-Empty", "")


@pytest.mark.parametrize("text", [f"Bearer {SECRET}", f": {SECRET}", f"Bad Name: {SECRET}"])
def test_bad_header_option_never_echoes_the_value(text: str) -> None:
    with pytest.raises(LineError) as caught:
        parse_header(text)

    assert SECRET not in str(caught.value)
    assert "HINT:" in str(caught.value)


def test_parse_rate() -> None:
    assert parse_rate("API.example.com=5") == ("api.example.com", 5.0)
    assert parse_rate("*.example.com=0.5") == ("*.example.com", 0.5)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("api.example.com", "is not HOST=N"),
        ("=5", "is not HOST=N"),
        ("api.example.com=fast", "is not a number"),
        ("api.example.com=0", "must be a positive number"),
        ("api.example.com=-1", "must be a positive number"),
        ("api.example.com=inf", "must be a positive number"),
        ("api.example.com:443=5", "is not a host name"),
        ("https://api.example.com=5", "is not a host name"),
    ],
)
def test_bad_rates(text: str, problem: str) -> None:
    with pytest.raises(LineError, match=problem):
        parse_rate(text)


def test_input_file_validates_then_streams_twice(tmp_path: Path) -> None:
    path = tmp_path / "urls.txt"
    path.write_text('# two requests\nhttp://a.example/1\n\n{"url": "http://a.example/2"}\n')

    with InputFile.open(str(path)) as source:
        assert source.validate() == 2
        first = [r.url for r in source.requests()]
        second = [r.url for r in source.requests()]

    assert first == second == ["http://a.example/1", "http://a.example/2"]


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"missing\.txt: cannot be read .*HINT"):
        InputFile.open(str(tmp_path / "missing.txt"))


def test_stdin_is_spooled_and_read_twice() -> None:
    stdin = io.BytesIO(b"http://a.example/1\nhttp://a.example/2\n")

    with InputFile.open("-", stdin=stdin) as source:
        assert source.name == "<stdin>"
        assert source.validate() == 2
        assert [r.url for r in source.requests()] == ["http://a.example/1", "http://a.example/2"]


def test_stdin_errors_name_stdin() -> None:
    with (
        InputFile.open("-", stdin=io.BytesIO(b"http://a.example/1\nnot a url\n")) as source,
        pytest.raises(InputError, match=r"^<stdin>:2: "),
    ):
        source.validate()


def test_validation_streams_in_flat_memory(tmp_path: Path) -> None:
    path = tmp_path / "many.txt"
    lines = 20_000
    with path.open("w") as file:
        for i in range(lines):
            file.write(f'{{"url": "https://api{i % 50}.example.com/items/{i}", "key": {i}}}\n')
    size = path.stat().st_size

    with InputFile.open(str(path)) as source:
        tracemalloc.start()
        try:
            count = source.validate()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

    assert count == lines
    assert size > 1_000_000
    assert peak < 100_000, f"peak {peak} bytes while reading {size} bytes"
