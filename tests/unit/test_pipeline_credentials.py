"""Several credentials in a source's ``auth`` (``tokens:``, ``values:``): the file's checks,
the secrets masked, and the lanes the runtime makes of them (labels, what each adds)."""

from __future__ import annotations

import textwrap

import pytest

from fetchpipe import Request
from fetchpipe.pipeline.runtime.auth import (
    ApiKeyAuthenticator,
    BearerAuthenticator,
    LaneLabels,
    LanesAuthenticator,
    authenticator_for,
)
from fetchpipe.pipeline.spec.config import PipelineSpec, _build
from fetchpipe.pipeline.spec.errors import PipelineError
from fetchpipe.pipeline.spec.loading import load_yaml

BASE = """\
name: shop
sources:
  - name: products
    url: https://api.shop.test/v1/products
"""
ENV = {"TOKEN_A": "tok-a-secret", "TOKEN_B": "tok-b-secret", "KEY_A": "key-a", "KEY_B": "key-b"}


def _yaml(text: str) -> PipelineSpec:
    return _build(load_yaml(textwrap.dedent(text), "pipeline.yaml"), ENV)


def _error(text: str) -> str:
    with pytest.raises(PipelineError) as caught:
        _yaml(text)
    return str(caught.value)


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        (
            "{type: bearer, token: x, tokens: ['${TOKEN_A}']}",
            "pipeline.yaml:5: sources[0].auth: has both token and tokens. HINT: give exactly "
            "one: token: for one credential, tokens: [...] for several",
        ),
        ("{type: bearer}", "pipeline.yaml:5: sources[0].auth: needs token or tokens. HINT:"),
        (
            "{type: api_key, name: k, value: x, values: [y]}",
            "pipeline.yaml:5: sources[0].auth: has both value and values. HINT: give exactly "
            "one: value: for one credential, values: [...] for several",
        ),
        ("{type: api_key, name: k}", "pipeline.yaml:5: sources[0].auth: needs value or values."),
        ("{type: bearer, tokens: []}", "pipeline.yaml:5: sources[0].auth.tokens: list should"),
        ("{type: bearer, tokens: s3cret}", "sources[0].auth.tokens: must be a valid list"),
        ("{type: bearer, tokns: [a]}", "sources[0].auth.tokns: unknown key. HINT: did you mean"),
    ],
)
def test_a_bad_credential_list_is_named_with_a_hint(auth: str, message: str) -> None:
    said = _error(BASE + f"    auth: {auth}\n")
    assert message in said
    assert "s3cret" not in said  # a value that may be a secret is never quoted


def test_every_credential_of_a_list_is_a_secret() -> None:
    pipeline = _yaml(BASE + "    auth: {type: bearer, tokens: ['${TOKEN_A}', '${TOKEN_B}']}\n")
    assert {"tok-a-secret", "tok-b-secret"} <= pipeline.auth_secrets()
    assert "tok-a-secret" not in pipeline.redact("sent tok-a-secret")


async def test_several_tokens_make_lanes_labelled_once_per_credential() -> None:
    pipeline = _yaml(
        BASE
        + "    auth: {type: bearer, tokens: ['${TOKEN_A}', '${TOKEN_B}']}\n"
        + "  - name: orders\n    url: https://api.shop.test/v1/orders\n"
        + "    auth: {type: bearer, tokens: ['${TOKEN_B}', '${KEY_A}']}\n"
        + "  - name: stock\n    url: https://api.shop.test/v1/stock\n"
        + "    auth: {type: api_key, name: k, in: query, values: ['${KEY_A}', '${KEY_B}']}\n"
    )
    labels = LaneLabels()
    made = [authenticator_for(s.auth, labels=labels, source=s.name) for s in pipeline.sources]
    assert all(isinstance(a, LanesAuthenticator) for a in made)
    lanes = [a.lanes for a in made if isinstance(a, LanesAuthenticator)]
    # TOKEN_B keeps its label in orders; KEY_A's place there is tokens[1], taken by TOKEN_B.
    assert [[lane.label for lane in group] for group in lanes] == [
        ["tokens[0]", "tokens[1]"],
        ["tokens[1]", "orders.tokens[1]"],
        ["orders.tokens[1]", "values[1]"],
    ]
    assert lanes[0][1].headers == {"Authorization": "Bearer tok-b-secret"}
    assert lanes[2][1].params == {"k": "key-b"} and lanes[2][1].headers is None
    request = await made[0].apply(Request("https://api.shop.test/v1/products"))
    assert request.lanes == lanes[0] and request.headers is None
    elsewhere = Request("https://other.test/x")
    assert await made[0].apply(elsewhere, same_origin=False) is elsewhere
    assert "secret" not in repr(made[0]) + repr(request)


def test_a_list_of_one_is_a_single_credential() -> None:
    pipeline = _yaml(
        BASE
        + "    auth: {type: bearer, tokens: ['${TOKEN_A}']}\n"
        + "  - name: orders\n    url: https://api.shop.test/v1/orders\n"
        + "    auth: {type: api_key, name: k, values: ['${KEY_A}']}\n"
    )
    first, second = (authenticator_for(s.auth) for s in pipeline.sources)
    assert isinstance(first, BearerAuthenticator) and isinstance(second, ApiKeyAuthenticator)
