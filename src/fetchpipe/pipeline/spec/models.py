"""The blocks of a pipeline file as frozen pydantic models (``extra="forbid"``).

``auth`` (its models in :mod:`.auth`) and ``paginate`` are unions told apart by their ``type``
key. Secrets (tokens, passwords, API-key values, client secrets) are ``SecretStr``: they print
as ``**********``.
Checks that span several fields raise :class:`~fetchpipe.pipeline.spec.errors.Problems` so that
each problem keeps its own field path.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    JsonValue,
    WithJsonSchema,
    model_validator,
)

from fetchpipe.engine.cache.http_cache import DEFAULT_PATH
from fetchpipe.engine.security import find_control_char
from fetchpipe.pipeline.spec.auth import ApiKeyAuth as ApiKeyAuth
from fetchpipe.pipeline.spec.auth import Auth as Auth
from fetchpipe.pipeline.spec.base import FrozenModel, Text
from fetchpipe.pipeline.spec.base import HttpUrl as HttpUrl
from fetchpipe.pipeline.spec.bodies import body_problems
from fetchpipe.pipeline.spec.errors import Problem, Problems
from fetchpipe.pipeline.spec.incremental import Incremental, incremental_problems
from fetchpipe.pipeline.spec.network import ProxySetting, SecurityConfig
from fetchpipe.pipeline.spec.paginate import (
    CursorPagination,
    NoPagination,
    OffsetPagination,
    PagePagination,
    Paginate,
)
from fetchpipe.pipeline.spec.path_fields import BodyPathText
from fetchpipe.pipeline.spec.paths import json_placeholders, placeholders
from fetchpipe.pipeline.spec.status import StatusActions
from fetchpipe.pipeline.spec.unnest import Unnest, unnest_problems

_Model = FrozenModel  # the name the blocks here and the top level (config.py) build on


def _identifier(value: str) -> str:
    if not value.isidentifier() or not value.isascii():
        raise ValueError(
            f"{value!r} is not a name: use letters, digits and _, not starting with a digit"
        )
    return value


Name = Annotated[str, AfterValidator(_identifier)]
Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Wait = Annotated[float, Field(ge=0, allow_inf_nan=False)]
ParamValue = str | int | float | bool


# --- defaults and hosts ----------------------------------------------------------------------


class TimeoutConfig(_Model):
    """Per-attempt timeouts in seconds, and a deadline for one request over all attempts."""

    connect: Seconds | None = 10.0
    read: Seconds | None = 30.0
    total: Seconds | None = 60.0
    deadline: Seconds | None = None


def _retry_budget(value: object) -> object:
    """``off`` (or YAML's ``off``, read as false) for no budget, else a number >= 1."""
    if value is False or (isinstance(value, str) and value.strip().lower() == "off"):
        return "off"
    hint = "HINT: give the failed retries a host may have (at least 1, e.g. 50), or off"
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"is not a retry budget. {hint}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{str(value)[:40]!r} is not a retry budget. {hint}") from None
    if not (number >= 1 and math.isfinite(number)):
        raise ValueError(f"{value!r} is not a retry budget. {hint}")
    return number


BudgetValue = Annotated[float | Literal["off"], BeforeValidator(_retry_budget)]


class RetryConfig(_Model):
    """Retries with exponential backoff and full jitter; ``attempts`` counts the first try.
    ``budget``: failed retries a host may have before its retries stop (``off``: no budget)."""

    attempts: int = Field(default=4, ge=1)
    wait_initial: Wait = 0.5
    wait_max: Wait = 30.0
    retry_after_max: Wait = 300.0
    budget: BudgetValue = Field(
        default=50.0,
        description="Failed retries a host may have before its retries stop (a retry that "
        "succeeds gives one back); off: no budget.",
    )


class BreakerConfig(_Model):
    """The circuit breaker of every host: it opens after ``threshold`` requests in a row failed,
    for ``cooldown`` seconds (doubling up to ``cooldown_max``); meanwhile the host's requests
    fail at once as host_down (``on_open: fail``) or wait for it (``on_open: wait``)."""

    on_open: Literal["fail", "wait"] = "fail"
    threshold: int = Field(default=20, ge=1)
    cooldown: Wait = 5.0
    cooldown_max: Wait = 60.0

    @model_validator(mode="after")
    def _check(self) -> BreakerConfig:
        if self.cooldown_max < self.cooldown:
            raise Problems(
                [
                    Problem(
                        ("cooldown_max",),
                        f"is below cooldown ({self.cooldown:g}). HINT: the cool-down doubles "
                        "up to cooldown_max, so give at least the cooldown",
                    )
                ]
            )
        return self


class CacheConfig(_Model):
    """The HTTP cache. ``ttl`` 0 follows the server's headers; otherwise it is a lifetime for
    responses that carry none."""

    enabled: bool = False
    ttl: Wait = 0.0
    path: Text = str(DEFAULT_PATH)
    stale_if_error: Wait = 86_400.0
    offline: bool = False


class AdaptiveConfig(_Model):
    """How hosts are paced by what they answer: their published rate limits (RateLimit,
    X-RateLimit-*) and, on hosts without max_per_second, a rate learned from their 429s
    (AIMD). ``adaptive: false`` is ``{enabled: false}``: only the hosts' limits and
    Retry-After."""

    enabled: bool = True
    min_per_second: Seconds = Field(default=0.1, description="The floor of a learned rate.")
    increase: Seconds = Field(
        default=0.025,
        description="Share of the rate set by the last 429 added per second of answers.",
    )
    decrease: float = Field(
        default=0.9, gt=0, lt=1, description="The factor on a host's rate at a 429."
    )
    first_wait: Wait = Field(
        default=1.0,
        description="Seconds a host's other requests wait for the answer to its first one.",
    )


def _adaptive(value: object) -> object:
    return {"enabled": value} if isinstance(value, bool) else value


AdaptiveSetting = Annotated[AdaptiveConfig, BeforeValidator(_adaptive)]


class Defaults(_Model):
    """Settings for every source: timeouts, retries, the breaker, cache, security, concurrency,
    headers, pacing by what hosts answer."""

    timeout: TimeoutConfig = TimeoutConfig()
    retry: RetryConfig = RetryConfig()
    breaker: BreakerConfig = BreakerConfig()
    cache: CacheConfig = CacheConfig()
    security: SecurityConfig = SecurityConfig()
    transport: Literal["aiohttp", "fast"] = Field(
        default="aiohttp",
        description="The HTTP client: aiohttp, or fast (pyreqwest; pip install 'fetchpipe[fast]').",
    )
    max_concurrency: int = Field(
        default=100, ge=1, description="Requests in flight at once, all hosts."
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Sent with every request.")
    proxy: ProxySetting | None = Field(
        default=None,
        description="http://[user:password@]host:port for every request but NO_PROXY's hosts "
        "(HTTPS through CONNECT), or none; unset: HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY.",
    )
    adaptive: AdaptiveSetting = Field(
        default=AdaptiveConfig(),
        description="Pace hosts by their published rate limits and their 429s (AIMD); false: "
        "by the hosts' limits and Retry-After only.",
    )


class ReportConfig(_Model):
    """The run's request log (the ``_fetchpipe_requests`` table): which requests it keeps."""

    sample: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description="Share of ordinary requests recorded (1: every one). Failed, retried, "
        "skipped, stale and slow requests are always recorded.",
    )
    slow: Wait = Field(
        default=1.0, description="Seconds from which a request counts as slow (always recorded)."
    )


class QuotaConfig(_Model):
    """Requests per calendar hour, day or month (UTC), counted across runs and processes in
    the state directory (``run --state-dir``, ``.fetchpipe`` by default)."""

    requests: int = Field(ge=1, description="Requests allowed per window.")
    per: Literal["hour", "day", "month"] = Field(
        default="day", description="The window: a calendar hour, day or month in UTC."
    )


class HostConfig(_Model):
    """Limits for one host (or ``*.example.com``): concurrency, a rate with a burst, a quota."""

    max_concurrency: int | None = Field(default=None, ge=1)
    max_per_second: Seconds | None = None
    burst: int = Field(default=1, ge=1)
    adaptive: bool | None = Field(
        default=None,
        description="true: learn a rate from the host's 429s, max_per_second being its "
        "ceiling; false: neither that nor its published limits. Unset: published limits "
        "always, 429s unless max_per_second is given.",
    )
    quota: QuotaConfig | None = Field(
        default=None,
        description="{requests: N, per: hour|day|month}: at most N requests per calendar "
        "window (UTC) across runs and processes; beyond it the source stops and resumes on the "
        "next run.",
    )


# --- sources ----------------------------------------------------------------------------------


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _any_case(words: tuple[str, ...], description: str) -> WithJsonSchema:
    """The schema of a word written in any case (``post``, ``Post``): the words as an enum, for
    an editor to offer, or any casing of one (JSON Schema has no case-blind enum)."""
    spelled = ("".join(f"[{c.upper()}{c.lower()}]" for c in word) for word in words)
    pattern = f"^({'|'.join(spelled)})$"
    return WithJsonSchema(
        {
            "type": "string",
            "anyOf": [{"enum": list(words)}, {"pattern": pattern}],
            "description": description,
        }
    )


Method = Annotated[
    Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
    BeforeValidator(_upper),
    _any_case(_METHODS, "The HTTP method, in any case (post is POST)."),
]


class Source(_Model):
    """One API endpoint and the table its records go to."""

    name: Name = Field(description="The table name.")
    url: str = Field(description="http(s) URL; {parent.field} makes one request per parent record.")
    method: Method = "GET"
    body: JsonValue = Field(
        default=None,
        alias="json",
        description="A JSON request body; {parent.field} in its strings, as in the url.",
    )
    idempotent: bool = Field(
        default=False,
        description="Retry this method like a GET (only GET and HEAD are retried otherwise).",
    )
    params: dict[str, ParamValue] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    auth: Auth | None = None
    records: BodyPathText = Field(
        default="",
        description='Where the records are: a dotted path (data.items; "" = the body) or a '
        "JSONPath query starting with $ ($.data.items[*].node), each match a record.",
    )
    primary_key: str | tuple[str, ...] | None = None
    write: Literal["append", "replace", "merge"] = "append"
    paginate: Paginate = Field(default_factory=lambda: NoPagination(type="none"))
    incremental: Incremental | None = None
    include_parent: dict[str, str] = Field(
        default_factory=dict, description="child_field: parent_field, copied into each record."
    )
    allow_cross_origin: bool = Field(
        default=False, description="Follow next-page links to other origins (without credentials)."
    )
    on_status: StatusActions = Field(default_factory=dict)
    unnest: list[Unnest] = Field(
        default_factory=list, description="List fields landed as child tables, a row an element."
    )

    @property
    def key_fields(self) -> tuple[str, ...]:
        """The primary key as a tuple of field names (empty without one)."""
        if self.primary_key is None:
            return ()
        return (self.primary_key,) if isinstance(self.primary_key, str) else self.primary_key

    @property
    def parent(self) -> str | None:
        """The source whose records this source's URL template refers to, if any."""
        found = {p.source for p in [*placeholders(self.url), *json_placeholders(self.body)]}
        return next(iter(found)) if found else None

    @model_validator(mode="after")
    def _check(self) -> Source:
        problems = [*_url_problems(self.url), *_control_problems(self)]
        cursor = self.paginate if isinstance(self.paginate, CursorPagination) else None
        problems += body_problems(
            self.method,
            self.body,
            self.url,
            self.headers,
            None if cursor is None else (cursor.location, cursor.param),
        )
        if self.primary_key is not None and not self.key_fields:
            problems.append(Problem(("primary_key",), "must name at least one field"))
        if self.write == "merge" and not self.key_fields:
            problems.append(
                Problem(
                    ("write",),
                    "merge needs a primary_key (rows are upserted by it). "
                    "HINT: add primary_key: id, or use write: append",
                )
            )
        for name in sorted(set(self.params) & set(_paging_params(self.paginate))):
            problems.append(
                Problem(
                    ("params", name),
                    f"is set by paginate ({self.paginate.type} pagination sends {name}). "
                    "HINT: remove it here; set the value in paginate",
                )
            )
        problems += incremental_problems(self.incremental, self.write)
        problems += unnest_problems(self.unnest, self.name, self.write, self.key_fields)
        if self.include_parent and not problems and self.parent is None:
            problems.append(
                Problem(
                    ("include_parent",),
                    "needs a parent source: the url must refer to one, as in {products.id}",
                )
            )
        if problems:
            raise Problems(problems)
        return self


def _paging_params(paginate: BaseModel) -> list[str]:
    """The query parameters a pagination block sets itself."""
    if isinstance(paginate, PagePagination):
        return [paginate.param, *([paginate.size_param] if paginate.size_param else [])]
    if isinstance(paginate, OffsetPagination):
        return [paginate.offset_param, paginate.limit_param]
    if isinstance(paginate, CursorPagination) and paginate.location == "query":
        return [paginate.param]
    return []


def _control_problems(source: Source) -> list[Problem]:
    """A control character (CR, LF, NUL, ...) in the URL, a parameter or a header would let
    a value inject headers or requests (CVE-2019-9740): refused before anything is sent."""
    found: list[Problem] = []
    hint = "has a control character (such as a line break). HINT: remove it"
    if find_control_char(source.url) is not None:
        found.append(Problem(("url",), hint))
    for name, value in source.params.items():
        if find_control_char(name) is not None or find_control_char(str(value)) is not None:
            found.append(Problem(("params", name), hint))
    for name, value in source.headers.items():
        if (
            find_control_char(name) is not None
            or find_control_char(value, allow_tab=True) is not None
        ):
            found.append(Problem(("headers", name), hint))
    return found


def _url_problems(url: str) -> list[Problem]:
    try:
        found = placeholders(url)
    except ValueError as exc:
        return [Problem(("url",), str(exc))]
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return [Problem(("url",), "is not an http(s) URL. HINT: write https://host/path")]
    if "{" in parts.netloc:
        return [Problem(("url",), "a parent reference may not be in the host")]
    sources = sorted({p.source for p in found})
    if len(sources) > 1:
        return [
            Problem(
                ("url",),
                f"refers to {len(sources)} sources ({', '.join(sources)}); "
                "a source has at most one parent",
            )
        ]
    return []
