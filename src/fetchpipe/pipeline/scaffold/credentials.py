"""The URL and headers given to ``fetchpipe init``: what is sent, and what is written. Pure.

``${VAR}`` in the URL or a header value is read from the environment for the requests and
written as it is (``$${`` is a literal ``${``, as in pipeline files). A secret written out
literally is never written: a credential-looking header (``Authorization``, ``X-Api-Key``,
``Cookie``, or a name with token, secret, key, auth, password, session, signature or
credential in it), a credential-looking query parameter (``api_key``, ``token``, ... and the
same words) or a URL password becomes a ``${NAME}`` reference, and :attr:`Prepared.variables`
says which variable to set to what.

The first credential becomes the source's ``auth`` block, so that the runtime sends it on
every page (a next-page link does not carry a query key) and only to the source's own origin:
``Authorization: Bearer ...`` is ``bearer``, a URL's user and password ``basic``, another
credential header or parameter ``api_key``. Any further one stays a header or a parameter.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fetchpipe._exceptions import ConfigError
from fetchpipe._redact import is_credential_header, is_credential_param

_REFERENCE = re.compile(r"\$(\$?)\{([^}]*)\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_SECRET_WORDS = (
    "token", "secret", "key", "auth", "password", "passwd", "session", "signature", "credential",
    "cookie",
)  # fmt: skip
_CURSOR_NAMES = frozenset(
    {
        "pagetoken", "nextpagetoken", "continuationtoken", "nexttoken", "synctoken",
        "cursor", "pagekey", "nextkey", "startkey",
    }
)  # fmt: skip
_SCHEMES = ("bearer", "basic", "token", "bot", "apikey", "key", "digest", "sso-key")


class CredentialsError(ConfigError):
    """A header that is not ``Name: value``, or a ``${VAR}`` that is not set."""


@dataclass(frozen=True, slots=True)
class Variable:
    """An environment variable the pipeline file reads, and what it must hold."""

    name: str
    holds: str
    given: bool
    """True: it was in the command (and is set); false: ``init`` named it for a secret it
    will not write, so it must be set before ``fetchpipe run``."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """What is sent (``url``, ``headers``: secrets in) and what is written (``file_*``:
    ``${VAR}`` references instead), the variables the file reads, and every secret value
    (to mask wherever anything is printed)."""

    url: str
    headers: Mapping[str, str]
    query: tuple[tuple[str, str], ...]
    """The URL's query as sent, each value decoded."""
    file_url: str
    """The URL without its query (the query is written as ``params``) or user info."""
    file_params: tuple[tuple[str, str], ...]
    file_headers: tuple[tuple[str, str], ...]
    file_auth: tuple[tuple[str, Any], ...] | None
    auth_param: tuple[str, str] | None
    """A query credential moved into ``auth``: its name and the value sent."""
    variables: tuple[Variable, ...]
    secrets: frozenset[str]


def looks_secret(name: str, *, header: bool) -> bool:
    """Whether a header or query parameter of this name carries a credential."""
    if header and is_credential_header(name):
        return True
    if not header and is_credential_param(name):
        return True
    lowered = re.sub(r"[_\-\s]", "", name).lower()
    if lowered in _CURSOR_NAMES:
        return False
    return any(word in lowered for word in _SECRET_WORDS)


def expand(text: str, env: Mapping[str, str], what: str) -> tuple[str, set[str], set[str]]:
    """``text`` with ``${VAR}`` read from ``env``: the text, the variables used, the values."""
    used: set[str] = set()
    values: set[str] = set()

    def one(match: re.Match[str]) -> str:
        if match.group(1):
            return "${" + match.group(2) + "}"
        name = match.group(2)
        if not _NAME.match(name):
            raise CredentialsError(
                f"{what}: `${{{name}}}` is not a variable reference. HINT: a name is letters, "
                "digits and _ (write `$${` for a literal `${`)"
            )
        if name not in env:
            raise CredentialsError(
                f"{what}: environment variable {name} is not set. HINT: export {name}=... "
                "(its value is used for the requests; the file keeps ${" + name + "})"
            )
        used.add(name)
        values.add(env[name])
        return env[name]

    return _REFERENCE.sub(one, text), used, values


def variable_name(prefix: str, name: str) -> str:
    """``PRODUCTS_X_API_KEY`` for prefix ``products`` and header ``X-Api-Key``."""
    base = re.sub(r"[^A-Za-z0-9]+", "_", f"{prefix}_{name}").strip("_").upper()
    return base if base and not base[0].isdigit() else f"_{base}"


def prepare(
    url: str, header_lines: Sequence[tuple[str, str]], env: Mapping[str, str], prefix: str
) -> Prepared:
    """Read ``url`` and the ``(name, value)`` headers as the module's docstring says;
    ``prefix`` starts the names of the variables made up for literal secrets."""
    secrets: set[str] = set()
    variables: dict[str, Variable] = {}
    auth: tuple[tuple[str, Any], ...] | None = None
    sent_headers: dict[str, str] = {}
    file_headers: list[tuple[str, str]] = []

    def invent(name: str, holds: str, value: str) -> str:
        variables[name] = Variable(name, holds, given=False)
        secrets.add(value)
        return "${" + name + "}"

    def given(names: set[str], values: set[str], holds: str) -> None:
        secrets.update(values)
        for name in sorted(names):
            variables.setdefault(name, Variable(name, holds, given=True))

    parts = urlsplit(url)
    if parts.password is not None or parts.username:
        user = parts.username or ""
        password = parts.password or ""
        sent_user, user_vars, user_values = expand(user, env, "the URL's user")
        sent_password, pass_vars, pass_values = expand(password, env, "the URL's password")
        given(user_vars | pass_vars, user_values | pass_values, "the URL's user or password")
        if not pass_vars and password:
            password = invent(variable_name(prefix, "password"), "the URL's password", password)
        if not user_vars and not password:  # a user name alone is often a token
            user = invent(variable_name(prefix, "user"), "the URL's user name", user)
        token = base64.b64encode(f"{sent_user}:{sent_password}".encode()).decode()
        sent_headers["Authorization"] = f"Basic {token}"
        secrets.add(token)
        auth = (("type", "basic"), ("username", user), ("password", password))
        host = parts.netloc.rpartition("@")[2]
        parts = parts._replace(netloc=host)
    bare = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    sent_bare, bare_vars, bare_values = expand(bare, env, "the URL")
    given(bare_vars, bare_values, "a part of the URL")
    file_url = bare  # the command line's syntax is the file's: ${VAR}, $${ for a literal

    for name, value in header_lines:
        sent, used, values = expand(value, env, f"header {name}")
        given(used, values, f"the value of the {name} header")
        sent_headers[name] = sent
        written = value
        if looks_secret(name, header=True) and not used:
            scheme, _, rest = value.partition(" ")
            keep = scheme.lower() in _SCHEMES and rest.strip()
            secret = rest.strip() if keep else value
            kind = "token" if name.lower() == "authorization" else name
            holds = f"the {name} header's value" + (f" after {scheme!r}" if keep else "")
            var = invent(variable_name(prefix, kind), holds, secret)
            written = f"{scheme} {var}" if keep else var
        bearer = re.fullmatch(r"(?i)bearer\s+(\S.*)", written)
        if auth is None and name.lower() == "authorization" and bearer:
            auth = (("type", "bearer"), ("token", bearer.group(1)))
        elif (
            auth is None
            and looks_secret(name, header=True)
            and name.lower()
            not in (
                "authorization",
                "cookie",
                "proxy-authorization",
            )
        ):
            auth = (("type", "api_key"), ("name", name), ("value", written))
        else:
            file_headers.append((name, written))

    query: list[tuple[str, str]] = []
    file_params: list[tuple[str, str]] = []
    auth_param = None
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        sent, used, values = expand(value, env, f"query parameter {name}")
        given(used, values, f"the {name} query parameter")
        query.append((name, sent))
        written = value
        if looks_secret(name, header=False) and not used and value:
            written = invent(variable_name(prefix, name), f"the {name} query parameter", value)
        if auth is None and looks_secret(name, header=False) and value:
            auth = (("type", "api_key"), ("name", name), ("value", written), ("in", "query"))
            auth_param = (name, sent)
        else:
            file_params.append((name, written))
    sent_query = urlencode(query) if "${" in parts.query else parts.query
    return Prepared(
        url=urlunsplit(urlsplit(sent_bare)._replace(query=sent_query)),
        headers=sent_headers,
        query=tuple(query),
        file_url=file_url,
        file_params=tuple(file_params),
        file_headers=tuple(file_headers),
        file_auth=auth,
        auth_param=auth_param,
        variables=tuple(variables.values()),
        secrets=frozenset(s for s in secrets if s),
    )
