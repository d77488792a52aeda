"""``fetchpipe init URL``: a first pipeline file for an API, from what it answers.

Exit codes: 0 the file was written (or printed), what could not be detected is said in it and
in the notes; 1 the URL could not be used (no answer, an error status, no JSON) or the file
would not load (a bug); 2 bad usage (found before any request: an unset ``${VAR}``, a bad
header, an existing ``-o`` file without ``--force``).

Imports inside the function are lazy, for start-up time (see :mod:`fetchpipe.cli`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click

from fetchpipe.cli.bad_usage import BadUsage
from fetchpipe.cli.options import network_options, parse_network, seconds

if TYPE_CHECKING:
    from fetchpipe.pipeline.scaffold.credentials import Prepared
    from fetchpipe.pipeline.scaffold.detection import Detection


@click.command("init")
@click.argument("url")
@click.option(
    "-o",
    "--output",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Write the pipeline file here (refused if it exists, unless --force).  "
    "[default: print it]",
)
@click.option("--force", is_flag=True, help="Overwrite the -o file if it exists.")
@click.option(
    "--name",
    metavar="NAME",
    help="The pipeline's and the source's (the table's) name.  [default: from the URL's path]",
)
@click.option(
    "-H",
    "--header",
    "headers",
    multiple=True,
    metavar="'NAME: VALUE'",
    help="Send this header (repeat). ${VAR} is read from the environment and written as "
    "${VAR}; a literal credential is sent but written as a ${VAR} to set.",
)
@seconds("--timeout", help="Timeout of each request in seconds.  [default: 30]")
@network_options
def init(
    url: str,
    output: str | None,
    force: bool,
    name: str | None,
    headers: tuple[str, ...],
    timeout: float | None,
    proxy: str | None,
    no_proxy: bool,
    ca_bundle: str | None,
    client_cert: str | None,
    client_key: str | None,
) -> None:
    """Write a pipeline file for the JSON API at URL, from what it answers.

    Fetches URL once and, when it finds a way to the next page, a second page (a few requests
    at most): it detects the list of records, the pagination (a Link header, a next URL or a
    cursor in the body, page or offset parameters with totals), the primary key and a field
    for incremental loads, and writes a commented pipeline file that `fetchpipe run` loads as
    it is. What it could not detect is said in the file and on the terminal. No secret is
    written: credentials become ${VAR} references to set.

    Without -o, the file goes to standard output and the notes to standard error.
    """
    from fetchpipe._exceptions import FetchpipeError
    from fetchpipe._redact import redact_text
    from fetchpipe.cli.input import LineError, parse_header  # lazy: yarl, start-up time
    from fetchpipe.engine.fetcher import run
    from fetchpipe.pipeline.scaffold.credentials import CredentialsError, prepare
    from fetchpipe.pipeline.scaffold.detection import name_from_url
    from fetchpipe.pipeline.scaffold.probe import Network, ProbeError, detect

    target = Path(output) if output is not None else None
    if target is not None and target.exists() and not force:
        raise BadUsage(f"{output} exists; nothing was sent. HINT: give --force to overwrite it")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise BadUsage(f"{redact_text(url)[:80]!r} is not an http(s) URL. HINT: https://host/path")
    if name is not None and not (name.isidentifier() and name.isascii()):
        raise BadUsage(
            f"--name {name[:40]!r} is not a name. HINT: letters, digits and _, not starting "
            "with a digit"
        )
    source_name = name or name_from_url(url)
    header_lines = []
    for index, text in enumerate(headers, 1):
        try:
            header_lines.append(parse_header(text))
        except LineError as exc:
            raise BadUsage(f"-H #{index}: {exc}") from None
    try:
        prepared = prepare(url, header_lines, os.environ, source_name)
    except CredentialsError as exc:
        raise BadUsage(str(exc)) from None
    policy, tls = parse_network(proxy, no_proxy, ca_bundle, client_cert, client_key)
    network = Network(policy, tls, timeout or 30.0)
    try:
        detection = run(detect(prepared, source_name, network))
    except ProbeError as exc:
        raise click.ClickException(redact_text(str(exc), prepared.secrets)) from None
    except FetchpipeError as exc:
        message = redact_text(str(exc), prepared.secrets)
        raise click.ClickException(f"the response could not be read: {message}") from None
    defaults = _defaults(tls, no_proxy, proxy)
    text = _checked_text(detection, prepared, defaults)
    notes = _notes(detection, prepared, url, output, proxy)
    if target is None:
        click.echo(text, nl=False)
        click.echo(notes, err=True)
        return
    _write(target, text, force)
    click.echo(notes)


def _defaults(tls: Any, no_proxy: bool, proxy: str | None) -> dict[str, Any]:
    """The ``defaults`` block for the network settings given: a run needs them as init did."""
    defaults: dict[str, Any] = {}
    if no_proxy:
        defaults["proxy"] = "none"
    elif proxy is not None and "@" not in urlsplit(proxy).netloc:
        defaults["proxy"] = proxy
    if tls is not None:
        security: dict[str, Any] = {}
        if tls.ca_bundle is not None:
            security["ca_bundle"] = tls.ca_bundle
        if tls.client_cert is not None:
            cert = {"cert": tls.client_cert}
            if tls.client_key is not None:
                cert["key"] = tls.client_key
            security["client_cert"] = cert
        defaults["security"] = security
    return defaults


def _checked_text(detection: Detection, prepared: Prepared, defaults: dict[str, Any]) -> str:
    """The file's text, loaded by the pipeline loader first: exit 1 when it does not load."""
    from fetchpipe._redact import redact_text
    from fetchpipe.pipeline.scaffold.render import FileParts, check, render
    from fetchpipe.pipeline.spec.errors import PipelineError

    text = render(detection, FileParts(prepared, defaults, "fetchpipe init"))
    try:
        written = [
            prepared.file_url,
            *(v for _, v in prepared.file_params),
            *(v for _, v in prepared.file_headers),
        ]
        spec = check(text, sorted(prepared.secrets), written)
    except PipelineError as exc:
        raise click.ClickException(
            "the generated file does not load, a bug in fetchpipe init (please report it, "
            f"with the API's shape); nothing written: {redact_text(str(exc), prepared.secrets)}"
        ) from None
    except ValueError as exc:  # a secret in the text: a bug too, and never written
        raise click.ClickException(f"{exc}, a bug in fetchpipe init; nothing written") from None
    source = spec.sources[0]
    expected = detection.paginate.type if detection.paginate is not None else "none"
    if source.records != detection.records.path or source.paginate.type != expected:
        raise click.ClickException(
            "the generated file does not read back as detected, a bug in fetchpipe init"
        )
    return text


def _notes(
    detection: Detection, prepared: Prepared, url: str, output: str | None, proxy: str | None
) -> str:
    from fetchpipe._redact import redact_text

    found, missed = detection.notes()
    count = detection.record_count
    lines = [
        f"GET {prepared.file_url}: {count} record{'' if count == 1 else 's'} on the first page"
    ]
    lines += ["detected:", *(f"  {line}" for line in found)]
    if missed:
        lines += ["could not detect:", *(f"  {line}" for line in missed)]
    if proxy is not None and "@" in urlsplit(proxy).netloc:
        lines.append(
            "the proxy's credentials are not written: set defaults.proxy with ${VAR}s, or "
            "HTTPS_PROXY, before running"
        )
    to_set = [v for v in prepared.variables if not v.given]
    if to_set:
        lines.append("set before running (their values were not written):")
        lines += [f"  export {v.name}=...   # {v.holds}" for v in to_set]
    if output is not None:
        lines.append(f"wrote {output}; next: fetchpipe validate {output} && fetchpipe run {output}")
    text = "\n".join(lines)
    return re.sub(r"\s+$", "", redact_text(text, prepared.secrets))


def _write(target: Path, text: str, force: bool) -> None:
    """Write ``text`` to ``target`` whole (a temporary file renamed into place); without
    ``force``, never over a file that appeared meanwhile."""
    directory = target.parent if str(target.parent) else Path(".")
    temporary = directory / f".{target.name}.{os.getpid()}.tmp"
    try:
        temporary.write_text(text, encoding="utf-8")
        if force:
            os.replace(temporary, target)
        else:
            try:
                os.link(temporary, target)
            except FileExistsError:
                raise BadUsage(f"{target} exists. HINT: give --force to overwrite it") from None
    except OSError as exc:
        raise click.ClickException(f"{target} could not be written: {exc.strerror}") from None
    finally:
        temporary.unlink(missing_ok=True)
