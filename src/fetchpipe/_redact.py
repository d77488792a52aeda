"""Secrets out of what is shown and stored: the one place that knows credential names.

Every URL and message that leaves the program (result files, the cache's stored URL, the plan,
errors, reports, logs) passes through one of these, from the least to the most taken out:

* :func:`redact_url` and :func:`redact_text`, for what is stored and printed: the value of a
  credential query parameter (:data:`CREDENTIAL_PARAMS`) becomes ``REDACTED``, a URL password
  ``***``, and so a user name given alone (``https://***@host/``: many APIs take a token as
  the user name of Basic auth). :func:`redact_text` also replaces known secret values (a
  pipeline's ``${VAR}`` values and auth credentials) by ``***``, and so the values of
  credential headers quoted in a text (``Authorization: Bearer ***``) and of quoted fields
  named as credentials (``"token": "***"``). Only values go: the rest of the URL and of the
  text is kept (a stored URL still says what was fetched, and ``fetch --resume`` matches an
  input URL on its redacted form).
* :func:`url_shape`, for a :class:`~fetchpipe.Request`'s repr: every query value and the
  password (the user name too when there is no password: it may be a token) become ``…``;
  parameter names stay.
* :func:`public_url` and :func:`with_public_urls`, for the engine's messages (redirect errors,
  aiohttp's exceptions, which quote the request URL whole): scheme, host, port and path only.
* :class:`SecretTokens`, for the journal of a pipeline run: a secret value in a stored URL
  becomes a token naming its hash, and is put back when the run resumes (a URL cannot carry
  ``***`` and still be fetched).

One rule lives elsewhere on purpose: the HTTP cache (:mod:`fetchpipe.engine.cache.keys`) must
tell two credentials apart (two API keys, two cache entries), so it hashes credential values
into the key instead of dropping them. It takes its names and ``REDACTED`` from here.

Credential headers (:data:`CREDENTIAL_HEADERS`) are never shown at all (messages and reprs name
headers, never their values); the names here decide which headers the cache keys by and which
the transport keeps from other origins and from plain HTTP after a redirect.

Written here rather than taken from a library: the rules are few and ours (which names, which
marks), they must work on free text quoting URLs, and the stored forms must stay stable, since
resumed runs match on them. This module imports nothing of fetchpipe: every layer may use it.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Collection, Iterable
from urllib.parse import unquote_plus, urlsplit, urlunsplit

REDACTED = "REDACTED"
"""What a credential query parameter's value becomes."""
MASK = "***"
"""What a URL password and a known secret value become."""
MIN_SECRET = 4
"""Known secret values shorter than this are not masked: they would garble the text."""

CREDENTIAL_HEADERS = frozenset(
    {
        "authorization",  # RFC 9110 11.6.2: credentials of any scheme (Bearer, Basic, ...)
        "proxy-authorization",  # RFC 9110 11.7.2: the same, for a proxy
        "cookie",  # RFC 6265: session cookies are bearer credentials
        "x-api-key",  # the most common API-key header (AWS API Gateway and many others)
        "api-key",  # Azure OpenAI, Azure AI Search
        "x-auth-token",  # OpenStack Keystone and many token APIs
        "x-goog-api-key",  # Google Cloud APIs
        "private-token",  # GitLab personal access tokens
        "x-amz-security-token",  # AWS temporary (STS) session credentials
    }
)
"""Header names (lower case) whose values are credentials, each with why beside it. The
transport keeps them from other origins and from plain HTTP; the cache keys by their values
(hashed), never stores them."""

CREDENTIAL_PARAMS = frozenset(
    {
        "api_key",  # the API key, as most APIs spell it in the query
        "apikey",  # ... or without the underscore
        "api-key",  # ... or with a hyphen
        "key",  # Google APIs and many others call the API key just `key`
        "access_token",  # OAuth 2 bearer token in the query (RFC 6750 2.3)
        "token",  # the generic name of a token parameter
        "secret",  # the generic name of a shared secret
        "client_secret",  # OAuth 2 client secret, when a token endpoint takes it in the query
        "password",  # a password in the query (old APIs, login forms)
        "signature",  # signed URLs and webhooks: a valid signature grants access until expiry
        "sig",  # Azure shared access signatures (SAS)
        "x-amz-signature",  # S3 presigned URLs
        "x-amz-security-token",  # S3 presigned URLs made with temporary (STS) credentials
        "x-goog-signature",  # Google Cloud Storage signed URLs
    }
)
"""Query parameter names (lower case) whose values are credentials, each with why beside it:
redacted in stored and printed URLs, hashed into the cache's keys (the transport's redirect
rule uses only the names configured: a redirect target's own signed query must survive)."""


def is_credential_header(name: str) -> bool:
    """Whether a header of this name (any case) carries a credential."""
    return name.strip().lower() in CREDENTIAL_HEADERS


def is_credential_param(name: str) -> bool:
    """Whether a query parameter of this name (any case, percent-encoded or not) carries a
    credential."""
    return unquote_plus(name).strip().lower() in CREDENTIAL_PARAMS


# --- stored and printed: redact_url, redact_text ---------------------------------------------

_END = r"&#;\s'\"<>"  # what ends a query parameter's name quoted in a message
_VALUE_END = r"&#\s\"`>"
"""What ends a credential value: the next pair, the fragment, white space, and the marks that
close a quoted URL and cannot stand in one unencoded (RFC 3986). ``;``, ``'`` and ``<`` do not
end it: ``;`` and ``'`` may stand in a query value, and a ``<`` in a value is a value's (an
API key with such characters must not leave its tail behind)."""
_TRAIL = r"'),.;:!\]}\\"
"""Marks a credential value does not end with: the text's punctuation after a quoted URL
(``'https://h/?key=…'``, ``(see https://h/?key=…).``), kept outside the mask."""
_CHAR = rf"(?:[^;{_VALUE_END}]|;(?![^=;?{_VALUE_END}]*=))"
"""A character of a credential value: a ``;`` too, unless a ``name=`` follows it (the old
``;`` between pairs)."""
_VALUE = rf"{_CHAR}*[^;{_VALUE_END}{_TRAIL}]"
"""A credential value: the longest run of :data:`_CHAR` that does not end with one of
:data:`_TRAIL` (a value of those marks only is left alone)."""
_NAMES = "|".join(re.escape(name) for name in sorted(CREDENTIAL_PARAMS, key=len, reverse=True))
_CREDENTIAL_PAIR = rf"(?i)([?&;#])({_NAMES})={_VALUE}"
"""A credential parameter and its value."""
_CREDENTIAL_OR_ENCODED_PAIR = (
    rf"(?i)([?&;#])(?:({_NAMES})={_VALUE}|([^=?{_END}]*%[^=?{_END}]*)="
    rf"{_VALUE.replace('[^', '[^?')})"
)
"""The same, or a pair whose name is percent-encoded, which :func:`_redact_pair` decodes to
decide (its value stops at ``?`` too, so that a pair left alone cannot hide a credential pair
after it; and at the ends of a name, so that a credential value after it is seen whole).
Slower: used only on text with a ``%`` in it."""
_USERINFO = r"(://)([^/?#\s\"<>]*)@"
"""The user info: up to the authority's last ``@``. A ``'`` does not end it: a password may hold
one unencoded (RFC 3986 ``sub-delims``); a quote that closes a URL in a message is seldom
followed by an ``@`` before white space, and when it is, more is masked, never less."""
_TEXT_HEADERS = "|".join(
    re.escape(name) for name in sorted(CREDENTIAL_HEADERS | {"set-cookie"}, key=len, reverse=True)
)
_HEADER_LINE = (
    rf"(?im)(?<![\w-])({_TEXT_HEADERS})([ \t]*:[ \t]*)"
    r"(?>((?:Bearer|Basic|Token|Digest|Negotiate|Bot|OAuth)[ \t]+)?)"
    r"(?!(?:\.\.\.|…|\*\*\*|REDACTED|\$\{\w+\}|<\w+>)[ \t]*(?:$|[\"'<>`]))"
    r"([^\s\"'<>`][^\r\n\"'<>`]*?)(?=[ \t]*(?:[,;.)][ \t]*)?(?:$|[\"'<>`]))"
)
"""A credential header as text shows it (``Authorization: Bearer …``, ``Cookie: a=1; b=2``):
its name, the colon, the scheme of an ``Authorization`` (kept), and the value, to the end of
the line or to the quote that closes it (its trailing punctuation kept outside). A value a
message shows in place of a credential (``...``, ``***``, ``${TOKEN}``, ``<token>``: a hint's
example) is left as it is."""
_HEADER_PARTS = ("authoriz", "cookie", "api-key", "token")
"""A part of every name of :data:`_TEXT_HEADERS`: a text without any has no header to mask."""
_QUOTED_FIELD = (
    r"([\"'])([A-Za-z0-9_.\-]{1,64})\1([ \t]*[:=][ \t]*)([\"'])((?:(?!\4)[^\\\r\n]|\\.)*)\4"
)
"""A quoted name and its quoted value, as JSON (``"token": "…"``) or a Python mapping's repr
(``'Authorization': '…'``) writes them."""


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str]:
    """``pattern`` compiled on first use: this module loads with ``import fetchpipe``, and
    compiling its patterns then would cost every start a few milliseconds."""
    return re.compile(pattern)


def _redact_pair(match: re.Match[str]) -> str:
    separator, name, encoded = match[1], match[2], match[3]
    if name is None:
        if not is_credential_param(encoded):
            return match[0]
        name = encoded
    return f"{separator}{name}={REDACTED}"


def _redact_userinfo(match: re.Match[str]) -> str:
    user, colon, _ = match[2].partition(":")
    if colon:
        return f"{match[1]}{user}:{MASK}@"
    return f"{match[1]}{MASK}@" if user else match[0]  # a user name alone may be a token


def redact_url(url: str) -> str:
    """``url`` with credential query values as ``REDACTED`` and its password as ``***``, or its
    user name as ``***`` when it has no password (a token given as the user name of Basic
    auth); the rest as it was (a user name beside a password is kept, and the host).

    Works as well on a message quoting URLs. Applying it twice changes nothing more. Only the
    values go: what follows a credential value (the next pair, the fragment, the text after a
    quoted URL) is left as it was.
    """
    if "@" in url:  # first: a password's characters cannot start a credential pair then
        url = _compiled(_USERINFO).sub(_redact_userinfo, url)
    if "=" in url:
        if "%" not in url:
            pairs = _compiled(_CREDENTIAL_PAIR)
            if pairs.search(url) is not None:  # the common case: none
                url = pairs.sub(rf"\g<1>\g<2>={REDACTED}", url)
        else:
            pairs = _compiled(_CREDENTIAL_OR_ENCODED_PAIR)
            if pairs.search(url) is not None:
                url = pairs.sub(_redact_pair, url)
    return url


def redact_text(text: str, secrets: Collection[str] = ()) -> str:
    """``text`` with every known secret value in ``secrets`` as ``***`` (the longest first, so
    that no part of a longer one is left; values under :data:`MIN_SECRET` characters are left
    alone), the values of credential headers it quotes (``Authorization: Bearer ***``,
    ``'X-Api-Key': '***'``) and of quoted fields named as credentials (``"access_token":
    "***"``) as ``***``, then with the URLs it quotes redacted as :func:`redact_url` does.
    Only the values go: the rest of the text is left as it was. Applying it twice changes
    nothing more."""
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= MIN_SECRET and secret in text:
            text = text.replace(secret, MASK)
    if "'" in text or '"' in text:
        text = _compiled(_QUOTED_FIELD).sub(_mask_quoted_field, text)
    if ":" in text:
        lowered = text.lower()  # a header's name in it first: the common text has none
        if any(part in lowered for part in _HEADER_PARTS):
            text = _compiled(_HEADER_LINE).sub(_mask_header, text)
    return redact_url(text)


def _mask_quoted_field(match: re.Match[str]) -> str:
    if not _is_credential_field(match[2]) or match[5] in ("", MASK):
        return match[0]
    quote = match[4]
    return f"{match[1]}{match[2]}{match[1]}{match[3]}{quote}{MASK}{quote}"


def _mask_header(match: re.Match[str]) -> str:
    return f"{match[1]}{match[2]}{match[3] or ''}{MASK}"


# --- a response body in a message: body_excerpt ---------------------------------------------------

EXCERPT_LENGTH = 200
"""The characters of a body a failure message quotes at most."""
_SCANNED = 65_536
"""The characters of a body masked before it is cut: a secret starting within the excerpt ends
within them (unless it is longer than 65 kB)."""
_JSON_PAIR = r'"((?:[^"\\]|\\.)*)"\s*:\s*"((?:[^"\\]|\\.)*)"'
"""A JSON member whose value is a string: its name and its value."""
_CREDENTIAL_FIELD_ENDS = ("token", "secret", "password", "api_key", "apikey")
"""A JSON field whose name ends so holds a credential (``refresh_token``, ``db_password``),
besides the names of credential parameters and headers."""


def _is_credential_field(name: str) -> bool:
    lowered = name.strip().lower()
    return (
        is_credential_param(lowered)
        or is_credential_header(lowered)
        or lowered.endswith(_CREDENTIAL_FIELD_ENDS)
    )


def _mask_field(match: re.Match[str]) -> str:
    return f'"{match[1]}":"{MASK}"' if _is_credential_field(match[1]) else match[0]


def body_excerpt(body: object, secrets: Collection[str] = (), limit: int = EXCERPT_LENGTH) -> str:
    """``body`` (parsed JSON, text or bytes) as a failure message may quote it: one line of at
    most ``limit`` characters (the last one ``…`` when cut), JSON written compactly, control
    characters and runs of white space as one space. Masked before it is cut, so that no part
    of one is left: the known ``secrets``, the string values of JSON fields named as
    credentials (``access_token``, ``client_secret``, ``X-API-Key``, ``password``, ...), and the
    credentials of the URLs it quotes (:func:`redact_text`). Empty for an empty body."""
    import json  # lazy: only a failure's message needs it

    if isinstance(body, bytes):
        body = body[: _SCANNED + 1].decode("utf-8", "replace")
    if isinstance(body, str) and len(body) <= _SCANNED and body.lstrip()[:1] in ("{", "["):
        with contextlib.suppress(ValueError):  # JSON as text (an error's body is not parsed)
            body = json.loads(body)
    if body is None:
        return ""
    if isinstance(body, str):
        text = body[:_SCANNED]
    else:
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str)
        text = text[:_SCANNED]
    text = redact_text(text, secrets)
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    text = _compiled(_JSON_PAIR).sub(_mask_field, text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- a Request's repr: url_shape ---------------------------------------------------------------


def url_shape(url: str) -> str:
    """``url`` with ``…`` for every query value and its password (for the whole user info when
    it has no password), without its fragment: the names are kept for debugging."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, _, password = userinfo.partition(":")
        netloc = f"{user}:…@{host}" if password else f"…@{host}"
    query = "&".join(
        f"{name}=…" if sep else name
        for name, sep, _ in (item.partition("=") for item in parts.query.split("&") if item)
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


# --- engine messages: public_url, with_public_urls ---------------------------------------------

_URL_IN_TEXT = (
    r"(?i)\b(https?://)(?:[^\s/?#\"<>]*@)?([^\s'\"<>?#]*)"
    r"(?:[?#](?:[^\s'\"<>]|'(?![\s'\",;:)\]}]|$))*(?<![),.;:!\]}]))?"
)
"""A URL in a text: its scheme, its user info (to the authority's last ``@``, a ``'`` in a
password included), its host and path (to a quote), and its query and fragment: to white space,
or to a quote that ends the URL (one followed by white space, punctuation or the end; a ``'``
inside a query value is the value's), the text's punctuation after it left outside."""


def public_url(url: object) -> str:
    """``url`` (a string, or a parsed URL such as yarl's) safe to show anywhere: without user
    info, query and fragment. The rest is shown as ``str(url)`` writes it."""
    try:
        parts = urlsplit(str(url))
    except ValueError:
        return "(an invalid URL)"
    host_and_port = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host_and_port, parts.path, "", ""))


def with_public_urls(text: str) -> str:
    """``text`` with every http(s) URL in it as :func:`public_url` shows it (without parsing:
    aiohttp's error messages quote the request URL whole, API keys included)."""
    return _compiled(_URL_IN_TEXT).sub(r"\1\2", text)


# --- the journal: SecretTokens -----------------------------------------------------------------

_TOKEN_START = "{fetchpipe-secret-"


class SecretTokens:
    """Secret values swapped for tokens that name their hash (``{fetchpipe-secret-<12 hex>}``)
    and back: how a pipeline's journal stores a URL that holds a secret. The token says which
    secret without holding it; the secret comes back from the configuration on resume, so the
    format must not change (journals of interrupted runs hold it)."""

    __slots__ = ("secrets",)

    def __init__(self, secrets: dict[str, str]) -> None:
        self.secrets = secrets
        """Token -> secret value, the longest value first."""

    @classmethod
    def of(cls, secrets: Iterable[str]) -> SecretTokens:
        """Tokens for the values of ``secrets`` with at least :data:`MIN_SECRET` characters."""
        import hashlib  # on first use: this module loads at start-up, only pipelines need it

        values = sorted({v for v in secrets if len(v) >= MIN_SECRET}, key=len, reverse=True)
        return cls(
            {f"{_TOKEN_START}{hashlib.sha256(v.encode()).hexdigest()[:12]}}}": v for v in values}
        )

    def hide(self, text: str) -> str:
        """``text`` with every secret value replaced by its token."""
        for token, secret in self.secrets.items():
            if secret in text:
                text = text.replace(secret, token)
        return text

    def reveal(self, text: str) -> str:
        """``text`` with every token replaced by its secret value again."""
        if _TOKEN_START in text:
            for token, secret in self.secrets.items():
                text = text.replace(token, secret)
        return text


__all__ = [
    "CREDENTIAL_HEADERS",
    "CREDENTIAL_PARAMS",
    "EXCERPT_LENGTH",
    "MASK",
    "MIN_SECRET",
    "REDACTED",
    "SecretTokens",
    "body_excerpt",
    "is_credential_header",
    "is_credential_param",
    "public_url",
    "redact_text",
    "redact_url",
    "url_shape",
    "with_public_urls",
]
