"""A response body quoted in a failure message: one short line, no secret left in it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fetchpipe._redact import EXCERPT_LENGTH, body_excerpt

SECRET = "s3cret-value-8c1f"


def test_json_is_written_compactly_on_one_line() -> None:
    body = {"error": {"message": "unknown field\n'colour'", "code": 400}}
    text = body_excerpt(body)  # a line break in a string stays escaped, as JSON writes it
    assert text == '{"error":{"message":"unknown field\\n\'colour\'","code":400}}'
    assert "\n" not in text


def test_text_and_bytes_become_one_line_without_control_characters() -> None:
    assert body_excerpt("<html>\n  <h1>Bad\tRequest</h1>\r\n</html>\x00") == (
        "<html> <h1>Bad Request</h1> </html>"
    )
    assert body_excerpt(b"bad \xff request\n") == "bad \ufffd request"


@pytest.mark.parametrize("body", [None, "", b"", "  \n "])
def test_an_empty_body_is_an_empty_excerpt(body: object) -> None:
    assert body_excerpt(body) == ""


def test_a_long_body_is_cut_to_the_limit_with_a_mark() -> None:
    text = body_excerpt({"detail": "x" * 1000})
    assert len(text) == EXCERPT_LENGTH and text.endswith("…")
    assert text.startswith('{"detail":"xxx')


@pytest.mark.parametrize(
    "body",
    [
        {"access_token": SECRET, "token_type": "bearer"},
        {"nested": [{"client_secret": SECRET}]},
        {"refresh_token": SECRET},
        {"Password": SECRET},
        {"X-API-Key": SECRET},
        '{"api_key": "' + SECRET + '"}',  # JSON the content type did not announce
        f"see https://api.x.test/a?page=2&api_key={SECRET}",
        f"https://me:{SECRET}@api.x.test/a",
    ],
)
def test_credential_fields_and_urls_are_masked(body: object) -> None:
    text = body_excerpt(body)
    assert SECRET not in text
    assert "***" in text or "REDACTED" in text


def test_known_secrets_are_masked_wherever_they_are() -> None:
    assert body_excerpt({"message": f"token {SECRET} expired"}, [SECRET]) == (
        '{"message":"token *** expired"}'
    )


def test_the_other_fields_stay() -> None:
    assert body_excerpt({"error": "invalid_token", "token_type": "bearer"}) == (
        '{"error":"invalid_token","token_type":"bearer"}'
    )


@settings(max_examples=200, deadline=None)
@given(prefix=st.integers(0, 400), secret=st.text("abcdef0123456789-", min_size=8, max_size=60))
def test_no_part_of_a_known_secret_survives_the_cut(prefix: int, secret: str) -> None:
    """Masked before it is cut: a secret straddling the limit leaves no head behind."""
    text = body_excerpt("." * prefix + secret + "." * 50, [secret])
    assert secret[:8] not in text
