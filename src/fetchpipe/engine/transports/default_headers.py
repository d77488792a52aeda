"""Request headers both transports send: the defaults, kept apart from credential headers.

``Accept-Encoding`` names exactly the codings the bounded decoder decodes
(:func:`~fetchpipe.engine.decoding.accept_encoding`: gzip, deflate, br, zstd), and a user's
own ``Accept-Encoding`` replaces it (a coding we cannot decode is still refused on arrival).

Credential headers are kept out of a client's defaults: a client adds its defaults to every
request and a request cannot take one away, so they could not be dropped on a redirect to
another origin. The transports add them to each request instead (``with_defaults``).
"""

from __future__ import annotations

from collections.abc import Mapping

from fetchpipe._exceptions import ConfigError
from fetchpipe.engine.decoding import accept_encoding
from fetchpipe.engine.security import SecurityPolicy, header_problem

USER_AGENT = "fetchpipe/0.1"


def split_default_headers(
    policy: SecurityPolicy, headers: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """A client's default headers (ours, then ``headers`` over them), and the credential
    headers among ``headers``, to be added to each request instead."""
    defaults = {"User-Agent": USER_AGENT, "Accept-Encoding": accept_encoding()}
    credentials: dict[str, str] = {}
    names = policy.all_credential_headers
    for name, value in headers.items():
        problem = header_problem(name, value)
        if problem is not None:
            raise ConfigError(
                f"default {problem}. HINT: strip line breaks and control characters from it."
            )
        lower = name.lower()
        for existing in [key for key in defaults if key.lower() == lower]:
            del defaults[existing]
        (credentials if lower in names else defaults)[name] = value
    return defaults, credentials


def with_defaults(
    defaults: Mapping[str, str], headers: Mapping[str, str] | None
) -> Mapping[str, str]:
    """``defaults`` under ``headers``, names compared without case."""
    if not headers:
        return defaults
    given = {name.lower() for name in headers}
    merged = {name: value for name, value in defaults.items() if name.lower() not in given}
    merged.update(headers)
    return merged
