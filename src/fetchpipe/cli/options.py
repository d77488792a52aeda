"""Option types, parsers and declarations that more than one command uses.

The parsers raise ``click.BadParameter`` naming the option: click prints the command's usage line
and the error, and exits 2 before anything is sent. They import what they need when called
(lazy: ``fetchpipe fetch --help`` loads no URL parser).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from fetchpipe._config import TRANSPORTS
from fetchpipe._exceptions import ConfigError
from fetchpipe._redact import redact_text
from fetchpipe.cli.bad_usage import BadUsage

if TYPE_CHECKING:
    from fetchpipe._quota import Quota
    from fetchpipe.distributed.sharding import ShardSelector
    from fetchpipe.engine.proxies import ProxyPolicy
    from fetchpipe.engine.tls import TlsPolicy

_Decorated = TypeVar("_Decorated", bound=Callable[..., Any])

# --- durations: --cache-ttl, --stale-if-error, cache prune --older-than ---------------------------

_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([smhdw]?)\s*", re.IGNORECASE)
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_DURATION_HINT = "seconds (3600) or a number with s, m, h, d or w (90s, 30m, 12h, 7d)"


def parse_duration(text: str) -> float:
    """Seconds in ``text``: ``3600``, ``90s``, ``30m``, ``12h``, ``7d``, ``1w``, ``1.5h``."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError(f"{text[:40]!r} is not a duration. HINT: {_DURATION_HINT}")
    seconds = float(match[1]) * _UNIT_SECONDS[match[2].lower()]
    if not math.isfinite(seconds):
        raise ValueError(f"{text[:40]!r} is too long a duration. HINT: {_DURATION_HINT}")
    return seconds


class Duration(click.ParamType[float, Any]):
    """A click type for :func:`parse_duration`."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float):
            return float(value)
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


_HOST_PATTERN = re.compile(r"[a-z0-9*?\[\]!._-]+", re.IGNORECASE)


def parse_cache_ttls(values: Iterable[str]) -> tuple[float | None, dict[str, float]]:
    """``--cache-ttl`` values: the default lifetime and the lifetimes per host pattern or URL
    glob. The last value for the same pattern wins, as with ``--rate``."""

    default: float | None = None
    overrides: dict[str, float] = {}
    for text in values:
        pattern, equals, seconds = text.rpartition("=")
        pattern = pattern.strip()
        try:
            ttl = parse_duration(seconds)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="'--cache-ttl'") from None
        if not equals:
            default = ttl
        elif "/" in pattern:
            if not pattern.lower().startswith(("http://", "https://", "*")):
                raise click.BadParameter(
                    f"the URL glob {redact_text(pattern)[:80]!r} matches no URL. HINT: a URL glob "
                    "matches the whole URL, e.g. 'https://api.example.com/v1/*=600'",
                    param_hint="'--cache-ttl'",
                )
            overrides[pattern] = ttl
        elif _HOST_PATTERN.fullmatch(pattern):
            overrides[pattern] = ttl
        else:
            raise click.BadParameter(
                f"{redact_text(pattern)[:80]!r} is not a host pattern. HINT: SECONDS for every "
                "response without cache headers, HOST=SECONDS ('api.example.com', "
                "'*.example.com'; no scheme or port) or URLGLOB=SECONDS "
                "('https://api.example.com/v1/*')",
                param_hint="'--cache-ttl'",
            )
    return default, overrides


# --- the limits and headers of fetch --------------------------------------------------------------


def parse_rates(values: Iterable[str]) -> dict[str, float]:
    """``--rate HOST=N`` values: requests per second per host pattern; the last one wins."""
    from fetchpipe.cli.input import LineError, parse_rate

    rates: dict[str, float] = {}
    for text in values:
        try:
            host, rate = parse_rate(text)
        except LineError as exc:
            raise click.BadParameter(str(exc), param_hint="'--rate'") from None
        rates[host] = rate
    return rates


def parse_quotas(values: Iterable[str]) -> dict[str, Quota]:
    """``--quota HOST=N/day`` values (also ``/hour``, ``/month``): requests per calendar window
    in UTC, counted across runs and processes; the last one for a host wins."""
    from fetchpipe._quota import parse_quota

    quotas: dict[str, Quota] = {}
    for text in values:
        host, sep, value = text.partition("=")
        host = host.strip().lower()
        try:
            if not sep or not host or any(c in host for c in "/: "):
                raise ConfigError(
                    f"{text!r} is not HOST=N/PERIOD. HINT: e.g. --quota api.example.com=5000/day "
                    "(also /hour and /month: calendar windows in UTC)"
                )
            quotas[host] = parse_quota(value)
        except ConfigError as exc:
            raise click.BadParameter(str(exc), param_hint="'--quota'") from None
    return quotas


def state_dir_option(command: _Decorated) -> _Decorated:
    """``--state-dir``: where quotas are counted across runs and processes."""
    return click.option(
        "--state-dir",
        default=".fetchpipe",
        show_default=True,
        metavar="DIR",
        help="Where host quotas are counted across runs and processes (quotas.sqlite, an "
        "SQLite file that concurrent runs share).",
    )(command)


def parse_headers(values: Iterable[str]) -> dict[str, str]:
    """``--header 'NAME: VALUE'`` values; an error names the header by its place, not its value."""
    from fetchpipe.cli.input import LineError, parse_header

    headers: dict[str, str] = {}
    for index, text in enumerate(values, 1):
        try:
            name, value = parse_header(text)
        except LineError as exc:
            raise click.BadParameter(f"header #{index}: {exc}", param_hint="'--header'") from None
        headers[name] = value
    return headers


def parse_retry_budget(text: str) -> float | None:
    """``--retry-budget``: a number of failed retries per host (at least 1), or ``off``."""
    if text.strip().lower() == "off":
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value >= 1 and math.isfinite(value)):
        raise click.BadParameter(
            f"{text[:40]!r} is not a retry budget. HINT: give the number of failed retries a "
            "host may have before its retries stop (at least 1, e.g. 50), or 'off'",
            param_hint="'--retry-budget'",
        )
    return value


# --- shared by several commands -------------------------------------------------------------------


def shard_selector(text: str, then: str | None = None) -> ShardSelector:
    """``--shard K/N`` read (fetch, run, state); exit 2 saying what is wrong, with its hint:
    ``--shard: ...; then`` when ``then`` says what was not done (``nothing was sent``)."""
    from fetchpipe.distributed.sharding import ShardSelector  # lazy: start-up time

    try:
        return ShardSelector.parse(text)
    except ConfigError as exc:
        raise BadUsage(str(exc) if then is None else f"--shard: {exc}; {then}") from None


def comma_separated(values: Iterable[str]) -> list[str]:
    """The names in ``values``, each value a name or names separated by commas; blanks dropped.

    ``run --select``, ``bench throughput --transport`` and the other lists of names."""
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def whole_number(
    *names: str,
    minimum: int,
    default: int | None = None,
    help: str | None = None,
    show_default: bool | str = True,
) -> Callable[[_Decorated], _Decorated]:
    """An option taking a whole number of at least ``minimum``; its default shown in the help
    (or ``show_default``, when it is words)."""
    return click.option(
        *names,
        default=default,
        show_default=show_default,
        type=click.IntRange(min=minimum),
        help=help,
    )


def seconds(
    *names: str, help: str, default: float | None = None, positive: bool = False
) -> Callable[[_Decorated], _Decorated]:
    """An option taking SECONDS: at least 0 (above 0 if ``positive``); a default is shown."""
    return click.option(
        *names,
        type=click.FloatRange(min=0, min_open=positive),
        default=default,
        show_default=True,
        metavar="SECONDS",
        help=help,
    )


def number(
    *names: str, minimum: float, default: float, help: str | None = None
) -> Callable[[_Decorated], _Decorated]:
    """An option taking a number (a float) of at least ``minimum``; its default shown."""
    return click.option(
        *names, default=default, show_default=True, type=click.FloatRange(min=minimum), help=help
    )


def minute_option(*names: str, minimum: float = 0) -> Callable[[_Decorated], _Decorated]:
    """How many seconds stand for one minute of the seed's API latencies (default 0.1)."""
    return number(
        *names or ("--minute",),
        minimum=minimum,
        default=0.1,
        help="Seconds that stand for one minute of the seed's API latencies.",
    )


def names_option(*names: str, default: str | None, help: str) -> Callable[[_Decorated], _Decorated]:
    """An option taking names separated by commas (see :func:`comma_separated`)."""
    return click.option(*names, default=default, show_default=True, help=help)


json_flag = click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead.")
"""``--json``: print one JSON object in place of the text."""


def transport_option(help: str) -> Callable[[_Decorated], _Decorated]:
    """``--transport``: one of fetchpipe's transports, aiohttp unless given."""
    return click.option(
        "--transport",
        type=click.Choice(TRANSPORTS),
        default="aiohttp",
        show_default=True,
        help=help,
    )


# --- logs: --log-level, --log-format, -v (fetch, run, demo) -------------------------------------


def log_options(command: _Decorated) -> _Decorated:
    """``--log-level``, ``--log-format`` and ``-v``; the command passes their values to
    :func:`fetchpipe.cli.log_output.configure` (imported there: ``--help`` loads no logging)."""
    options = [
        click.option(
            "--log-level",
            type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
            envvar="FETCHPIPE_LOG_LEVEL",
            help="Log the run's events at this level and above on stderr: retries, pauses, "
            "hosts down and up, sources and pages (info); every request (debug).  "
            "[default: warning; env FETCHPIPE_LOG_LEVEL]",
        ),
        click.option(
            "--log-format",
            type=click.Choice(["text", "json"]),
            default="text",
            envvar="FETCHPIPE_LOG_FORMAT",
            show_default=True,
            help="Log lines as text, or as one JSON object per line (ts, level, event, run_id, "
            "source, host, url, attempt, status, error).",
        ),
        click.option(
            "-v",
            "--verbose",
            count=True,
            help="Log more: -v is --log-level info, -vv debug.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _output_path(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    path = Path(value)
    if path.is_dir():
        raise click.BadParameter(f"{value!r} is a directory. HINT: name a file")
    if not path.parent.is_dir():
        raise click.BadParameter(
            f"the directory of {value!r} does not exist. HINT: create it, or name a file in an "
            "existing one"
        )
    return value


def report_option(what: str) -> Callable[[_Decorated], _Decorated]:
    """``--report FILE``: write the run's HTML report there once it has ended (checked before
    anything is sent: exit 2 for a directory, or a file in a missing one)."""
    return click.option(
        "--report",
        "report_path",
        metavar="FILE",
        callback=_output_path,
        help=f"Write the HTML report of the run to FILE (replaced) when it ends: {what}",
    )


metrics_option = click.option(
    "--metrics",
    "metrics_path",
    metavar="FILE",
    callback=_output_path,
    help="Write the run's metrics to FILE (replaced) when it ends, in the Prometheus text "
    "format (for node_exporter's textfile collector: name it *.prom): requests by outcome, "
    "retries, bytes and a duration histogram per host and source.",
)
"""``--metrics FILE``: checked before anything is sent, as ``--report``."""


# --- proxies and TLS: fetch's --proxy, --no-proxy, --ca-bundle, --client-cert, --client-key -------


def network_options(command: _Decorated) -> _Decorated:
    """The options of the proxy and of TLS (read by :func:`parse_network`)."""
    options = [
        click.option(
            "--proxy",
            metavar="URL",
            help="Send requests through this HTTP proxy, http://[USER:PASSWORD@]HOST:PORT "
            "(HTTPS in a CONNECT tunnel), but for the hosts of NO_PROXY.  [default: the "
            "environment's HTTP_PROXY, HTTPS_PROXY, ALL_PROXY and NO_PROXY]",
        ),
        click.option(
            "--no-proxy",
            is_flag=True,
            help="Send every request directly, whatever the environment's proxy variables say.",
        ),
        click.option(
            "--ca-bundle",
            metavar="PATH",
            help="A PEM file of CA certificates to trust besides the system's (SSL_CERT_FILE "
            "replaces the system's).",
        ),
        click.option(
            "--client-cert",
            metavar="PATH",
            help="A PEM client certificate (its chain after it) for servers that ask for one; "
            "with its private key unless --client-key gives it.",
        ),
        click.option(
            "--client-key", metavar="PATH", help="The private key of --client-cert (PEM)."
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def parse_network(
    proxy: str | None,
    no_proxy: bool,
    ca_bundle: str | None,
    client_cert: str | None,
    client_key: str | None,
) -> tuple[ProxyPolicy, TlsPolicy | None]:
    """The proxy policy (``--proxy`` or ``--no-proxy`` over the environment's variables) and
    the TLS settings, their files read: BadUsage (exit 2) for what cannot be used, naming the
    option or the variable, never a proxy's credentials."""
    import os

    from fetchpipe.engine.proxies import proxy_policy
    from fetchpipe.engine.tls import TlsPolicy, environment_problem, load_tls

    if proxy is not None and no_proxy:
        raise BadUsage("--proxy and --no-proxy contradict each other. HINT: give one of them")
    try:
        policy = proxy_policy("none" if no_proxy else proxy or "env", "--proxy", os.environ)
    except ConfigError as exc:
        raise BadUsage(str(exc)) from None
    problem = environment_problem(os.environ)
    if problem is not None:
        raise BadUsage(problem)
    if client_key is not None and client_cert is None:
        raise BadUsage("--client-key needs --client-cert. HINT: give the certificate too")
    tls = TlsPolicy(ca_bundle, client_cert, client_key)
    if not tls.active:
        return policy, None
    names = {
        "ca_bundle": "--ca-bundle",
        "client_cert": "--client-cert",
        "client_key": "--client-key",
    }
    try:
        load_tls(tls, names)
    except ConfigError as exc:
        raise BadUsage(str(exc)) from None
    return policy, tls
