"""A pipeline file's model: its top level, its loading, its errors by line, its engine values.

::

    spec = PipelineSpec.from_file("pipeline.yaml")     # or .toml; or PipelineSpec.from_dict({...})
    spec.limits(), spec.timeouts(), spec.retry_policy(), spec.breaker_policy(), spec.http_cache(),
    spec.adaptive_policy()
    spec.ordered_sources()                             # parents before their children

Loading substitutes ``${VAR}`` from the environment, validates everything and raises one
:class:`PipelineError` listing every problem as ``file:line: field.path: message``, with a
suggestion for a near-miss key (pydantic's errors are worded by
:mod:`~fetchpipe.pipeline.spec.pydantic_problems`). Values read from the environment never
appear in messages. With ``skip_env``, unset variables are listed instead (``unchecked``).

:class:`PipelineSpec` is what the plan and the runner read; the public
:class:`~fetchpipe.pipeline.api.Pipeline` adds ``run()`` on top of it, so that this module
imports neither.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Self, TypeVar, overload

from pydantic import Field, PrivateAttr, SecretStr, ValidationError, model_validator

from fetchpipe._config import HostLimits, Limits, Timeouts
from fetchpipe._exceptions import ConfigError, SettingError
from fetchpipe._quota import Quota
from fetchpipe._redact import CREDENTIAL_HEADERS, CREDENTIAL_PARAMS, redact_text
from fetchpipe.engine.aimd import AdaptivePolicy
from fetchpipe.engine.breaker import BreakerPolicy
from fetchpipe.engine.cache.http_cache import HttpCache
from fetchpipe.engine.proxies import ProxyPolicy
from fetchpipe.engine.retry import RetryPolicy
from fetchpipe.engine.security import SecurityPolicy
from fetchpipe.engine.tls import TlsPolicy
from fetchpipe.engine.transports.factory import fast_transport_problem
from fetchpipe.pipeline.spec.destination import (
    DestinationUrl,
    DestinationUrlText,
    parse_destination,
)
from fetchpipe.pipeline.spec.errors import (
    NeedsEnvironment,
    PipelineError,
    Problem,
    Problems,
    did_you_mean,
)
from fetchpipe.pipeline.spec.graph import DependencyCycle, dependency_order
from fetchpipe.pipeline.spec.loading import UNSET, UNSET_URL, Document, load_file, substitute
from fetchpipe.pipeline.spec.models import (
    ApiKeyAuth,
    Defaults,
    HostConfig,
    ReportConfig,
    Source,
    _Model,
)
from fetchpipe.pipeline.spec.network import SETTING_PATHS, load_network, proxy_secrets
from fetchpipe.pipeline.spec.pydantic_problems import problems_from
from fetchpipe.pipeline.spec.unnest import child_tables, table_problems

S = TypeVar("S", bound="PipelineSpec")

_PIPELINE_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"
SCHEMA_URI = "https://json-schema.org/draft/2020-12/schema"


class PipelineSpec(_Model):
    """A declarative pipeline: sources fetched into tables of one destination."""

    name: str = Field(pattern=_PIPELINE_NAME, description="Names the default destination file.")
    destination: DestinationUrlText | None = Field(
        default=None,
        description="duckdb:///FILE.duckdb (default ./<name>.duckdb), jsonl://DIR, parquet://DIR",
    )
    defaults: Defaults = Defaults()
    hosts: dict[str, HostConfig] = Field(
        default_factory=dict, description="Limits per host name or *.example.com pattern."
    )
    sources: list[Source] = Field(min_length=1)
    report: ReportConfig = Field(
        default_factory=ReportConfig, description="What the run's request log keeps."
    )

    _secrets: frozenset[str] = PrivateAttr(default=frozenset())
    _file: str | None = PrivateAttr(default=None)
    _unchecked: tuple[Problem, ...] = PrivateAttr(default=())
    _unset: frozenset[str] = PrivateAttr(default=frozenset())
    _lines: Document = PrivateAttr(default_factory=lambda: Document(None))

    # --- loading --------------------------------------------------------------------------------

    @classmethod
    def from_file(
        cls, path: str | Path, *, env: Mapping[str, str] | None = None, skip_env: bool = False
    ) -> Self:
        """Load a YAML or TOML pipeline file. Raises :class:`PipelineError`.

        ``skip_env``: an unset ``${VAR}`` is no error; the values that use one are not checked
        (:attr:`unchecked` lists them). For checking a file where its secrets are not set (CI);
        such a pipeline is for looking at, not for running. When the file cannot be read into
        a pipeline without those values, :class:`NeedsEnvironment` lists them.
        """
        return _build(load_file(path), env, cls, skip_env=skip_env)

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        *,
        env: Mapping[str, str] | None = None,
        skip_env: bool = False,
    ) -> Self:
        """Load a pipeline from plain data (as parsed from YAML, TOML or JSON)."""
        return _build(Document(data), env, cls, skip_env=skip_env)

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """The JSON Schema of a pipeline file, for editors."""
        schema = PipelineSpec.model_json_schema(by_alias=True)  # the file's, whatever the class
        return {"$schema": SCHEMA_URI, **schema, "title": "fetchpipe pipeline"}

    @property
    def file(self) -> str | None:
        """The file the pipeline was read from, when it was."""
        return self._file

    @property
    def unchecked(self) -> tuple[Problem, ...]:
        """Loaded with ``skip_env``: each value that uses an unset variable, with its line
        (such a value was not checked). Empty otherwise."""
        return self._unchecked

    @property
    def unset_variables(self) -> list[str]:
        """Loaded with ``skip_env``: the names of the unset variables, sorted."""
        return sorted(self._unset)

    def redact(self, text: str) -> str:
        """``text`` with every secret masked: values read from the environment and the
        credentials of every source's ``auth`` (however they were written), and credentials in
        the URLs it quotes (see :func:`fetchpipe._redact.redact_text`)."""
        return redact_text(text, self.secret_values())

    def secret_values(self) -> frozenset[str]:
        """Every secret of the pipeline: values read from the environment and the credentials
        of the sources' ``auth`` blocks and of ``defaults.proxy``."""
        return self._secrets | self.auth_secrets() | proxy_secrets(self.defaults.proxy)

    def config_hash(self) -> str:
        """A hash of the settings (secrets excluded; so is the proxy, which may hold a password
        and changes no data, and the request log's settings): an interrupted run is resumed
        only by the same pipeline."""
        text = self.model_dump_json(by_alias=True, exclude={"defaults": {"proxy"}, "report": True})
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def auth_secrets(self) -> frozenset[str]:
        """The credential values configured in the sources' ``auth`` blocks."""
        found: set[str] = set()
        for source in self.sources:
            for value in (source.auth.__dict__ if source.auth is not None else {}).values():
                for secret in value if isinstance(value, list) else [value]:
                    if isinstance(secret, SecretStr):
                        found.add(secret.get_secret_value())
        if self._unchecked:  # what stands for an unset variable is no secret
            found -= {UNSET, UNSET_URL}
        return frozenset(found)

    # --- derived values -------------------------------------------------------------------------

    @property
    def target(self) -> DestinationUrl:
        """The parsed destination (``duckdb:///<name>.duckdb`` when none is given)."""
        return parse_destination(self.destination or f"duckdb:///{self.name}.duckdb")

    def source(self, name: str) -> Source:
        for source in self.sources:
            if source.name == name:
                return source
        raise KeyError(name)

    def tables(self) -> list[str]:
        """Every table the pipeline writes: each source's, then the ``unnest`` tables."""
        return [s.name for s in self.sources] + child_tables(s.unnest for s in self.sources)

    def ordered_sources(self) -> list[Source]:
        """Sources with every parent before its children, otherwise in file order."""
        order = dependency_order({s.name: [p] if (p := s.parent) else [] for s in self.sources})
        return [self.source(name) for name in order]

    def limits(self) -> Limits:
        hosts = {
            pattern: HostLimits(
                h.max_concurrency,
                h.max_per_second,
                h.burst,
                h.adaptive,
                None if h.quota is None else Quota(h.quota.requests, h.quota.per),
            )
            for pattern, h in self.hosts.items()
        }
        return Limits(max_concurrency=self.defaults.max_concurrency, hosts=hosts)

    def adaptive_policy(self) -> AdaptivePolicy | None:
        """How hosts are paced by what they answer; None with ``defaults.adaptive: false``."""
        a = self.defaults.adaptive
        if not a.enabled:
            return None
        return AdaptivePolicy(
            min_per_second=a.min_per_second,
            increase=a.increase,
            decrease=a.decrease,
            first_wait=a.first_wait,
        )

    def timeouts(self) -> Timeouts:
        t = self.defaults.timeout
        return Timeouts(connect=t.connect, read=t.read, total=t.total, deadline=t.deadline)

    def retry_policy(self) -> RetryPolicy:
        r = self.defaults.retry
        return RetryPolicy(
            attempts=r.attempts,
            wait_initial=r.wait_initial,
            wait_max=r.wait_max,
            retry_after_max=r.retry_after_max,
            budget=None if r.budget == "off" else float(r.budget),
        )

    def breaker_policy(self) -> BreakerPolicy:
        b = self.defaults.breaker
        return BreakerPolicy(
            threshold=b.threshold,
            cooldown=b.cooldown,
            cooldown_max=b.cooldown_max,
            on_open=b.on_open,
        )

    def security_policy(self) -> SecurityPolicy:
        """The transport's rules; every API-key name of the sources is a credential (never
        sent to another origin, nor over a downgrade to plain HTTP)."""
        c = self.defaults.security
        headers, params = self._api_key_names()
        return SecurityPolicy(
            max_redirects=c.max_redirects,
            block_private=c.block_private,
            allow_addresses=tuple(c.allow_addresses),
            insecure_hosts=frozenset(c.insecure_hosts),
            credential_headers=CREDENTIAL_HEADERS | headers,
            credential_params=params,
        )

    def http_cache(self) -> HttpCache | None:
        """The configured cache (not opened), or ``None`` when the cache is off. The sources'
        API-key names count as credentials besides the usual ones: their values are hashed
        into the keys, and never stored in the cached URL."""
        c = self.defaults.cache
        if not c.enabled:
            return None
        headers, params = self._api_key_names()
        return HttpCache(
            c.path,
            ttl=c.ttl or None,
            stale_if_error=c.stale_if_error,
            offline=c.offline,
            credential_headers=CREDENTIAL_HEADERS | headers,
            credential_params=CREDENTIAL_PARAMS | params,
        )

    def network(
        self, environ: Mapping[str, str] = os.environ
    ) -> tuple[ProxyPolicy, TlsPolicy | None]:
        """The proxy policy and the TLS settings, their files read (see
        :func:`~fetchpipe.pipeline.spec.network.load_network`); a file that cannot be used is
        a PipelineError at the line of its key, as the file's other problems are."""
        security = self.defaults.security
        try:
            return load_network(
                self.defaults.proxy, security.ca_bundle, security.client_cert, environ
            )
        except SettingError as exc:
            path = SETTING_PATHS[exc.setting]
            problem = Problem(path, exc.problem, self._lines.line_of(path))
            raise PipelineError([problem], self._file, self.secret_values()) from None

    def _api_key_names(self) -> tuple[frozenset[str], frozenset[str]]:
        """The header names and the query parameter names (lower case) of the sources'
        ``api_key`` auth."""
        keys = [a for s in self.sources if isinstance(a := s.auth, ApiKeyAuth)]
        headers = frozenset(a.name.lower() for a in keys if a.in_ == "header")
        params = frozenset(a.name.lower() for a in keys if a.in_ == "query")
        return headers, params

    # --- checks across sources ------------------------------------------------------------------

    @model_validator(mode="after")
    def _check(self) -> Self:
        problems: list[Problem] = []
        for pattern in self.hosts:
            if not pattern or any(c in pattern for c in "/: "):
                problems.append(
                    Problem(
                        ("hosts", pattern),
                        "is not a host name. HINT: write api.example.com or *.example.com, "
                        "without scheme or port",
                    )
                )
        seen: dict[str, int] = {}
        for index, source in enumerate(self.sources):
            if source.name in seen:
                problems.append(
                    Problem(
                        ("sources", index, "name"),
                        f"duplicate source name {source.name!r} (also "
                        f"sources[{seen[source.name]}]). HINT: each source names its own table",
                    )
                )
            seen.setdefault(source.name, index)
        problems += table_problems([(s.name, s.unnest) for s in self.sources])
        for index, source in enumerate(self.sources):
            parent = source.parent
            if parent is not None and parent not in seen:
                problems.append(
                    Problem(
                        ("sources", index, "url" if "{" in source.url else "json"),
                        f"refers to unknown source {parent!r}{did_you_mean(parent, seen)}",
                    )
                )
        try:
            policy = self.security_policy()
        except ConfigError as exc:
            problems.append(Problem(("defaults", "security"), str(exc)))
        else:
            if self.defaults.transport == "fast":
                problem = fast_transport_problem(policy)
                if problem is not None:
                    problems.append(Problem(("defaults", "transport"), problem))
        if not problems:
            try:
                self.ordered_sources()
            except DependencyCycle as exc:
                problems.append(
                    Problem(
                        ("sources", seen[exc.cycle[0]], "url"),
                        f"sources depend on each other: {' -> '.join(exc.cycle)}",
                    )
                )
        if problems:
            raise Problems(problems)
        return self


# --- building and error messages ----------------------------------------------------------------


@overload
def _build(
    document: Document, env: Mapping[str, str] | None, *, skip_env: bool = False
) -> PipelineSpec: ...
@overload
def _build(
    document: Document, env: Mapping[str, str] | None, model: type[S], *, skip_env: bool = False
) -> S: ...


def _build(
    document: Document,
    env: Mapping[str, str] | None,
    model: type[S] | None = None,
    *,
    skip_env: bool = False,
) -> PipelineSpec:
    substituted = substitute(document.data, os.environ if env is None else env, skip_unset=skip_env)
    unchecked = tuple(replace(p, line=document.line_of(p.path)) for p in substituted.unset)
    problems = list(substituted.problems)
    pipeline: PipelineSpec | None = None
    if document.data is None:
        problems.append(Problem((), "the file is empty. HINT: give at least name and sources"))
    elif not isinstance(substituted.data, Mapping):
        problems.append(Problem((), "the top level must be a mapping with name and sources"))
    else:
        try:
            pipeline = (model or PipelineSpec).model_validate(substituted.data)
        except ValidationError as exc:
            unset = [p.path for p in (*substituted.problems, *substituted.unset)]
            found = problems_from(exc, PipelineSpec)
            problems.extend(p for p in found if not any(p.path[: len(u)] == u for u in unset))
    if problems or pipeline is None:
        located = [replace(p, line=p.line or document.line_of(p.path)) for p in problems]
        located.sort(key=lambda p: p.line or 0)
        if not located and unchecked:
            raise NeedsEnvironment(unchecked, document.name, substituted.secrets)
        raise PipelineError(located, document.name, substituted.secrets)
    pipeline._secrets = substituted.secrets
    pipeline._file = document.name
    pipeline._lines = Document(None, document.name, document.lines)
    pipeline._unchecked = unchecked
    pipeline._unset = substituted.unset_names
    return pipeline
