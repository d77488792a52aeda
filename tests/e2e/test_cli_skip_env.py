"""``fetchpipe validate|plan --skip-env`` as real subprocesses: a file checked where its secrets
are not set (CI), the unset variables listed; without the flag they stay errors (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import CountingServer, RunCli

SECRET = "s3cr3t-key-0a1b2c"


def _file(tmp_path: Path, server: CountingServer, extra: str = "") -> str:
    base = f"http://127.0.0.1:{server.server_address[1]}"
    path = tmp_path / "pipeline.yaml"
    path.write_text(
        "name: shop\n"
        "sources:\n"
        "  - name: products\n"
        f"    url: {base}/v1/products\n"
        "    auth: {type: api_key, name: X-API-Key, value: '${SKIP_ENV_SHOP_KEY}'}\n"
        "    records: $.data.items[*]\n"
        "    paginate: {type: cursor, cursor_path: $.meta.next_cursor}\n"
        "  - name: reviews\n"
        "    url: ${SKIP_ENV_SHOP_BASE}/v1/products/{products.id}/reviews\n" + extra,
        encoding="utf-8",
    )
    return str(path)


@pytest.fixture(autouse=True)
def _unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SKIP_ENV_SHOP_KEY", "SKIP_ENV_SHOP_BASE", "SKIP_ENV_PAGES"):
        monkeypatch.delenv(name, raising=False)


def test_without_the_flag_a_missing_variable_is_an_error(
    run_cli: RunCli, tmp_path: Path, server: CountingServer
) -> None:
    path = _file(tmp_path, server)
    for command in ("validate", "plan"):
        done = run_cli(command, path)
        assert done.returncode == 2
        assert done.stdout == ""
        assert done.stderr.splitlines() == [
            f"{path}:5: sources[0].auth.value: environment variable SKIP_ENV_SHOP_KEY is not "
            "set. HINT: export SKIP_ENV_SHOP_KEY=... before running, or write the value in the "
            "file",
            f"{path}:9: sources[1].url: environment variable SKIP_ENV_SHOP_BASE is not set. "
            "HINT: export SKIP_ENV_SHOP_BASE=... before running, or write the value in the file",
            f"{path}: 2 problems; nothing was sent",
        ]
    assert server.hits == 0


def test_validate_skip_env_checks_the_rest_and_lists_what_it_did_not(
    run_cli: RunCli, tmp_path: Path, server: CountingServer
) -> None:
    path = _file(tmp_path, server)
    done = run_cli("validate", "--skip-env", path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"{path}: ok: pipeline shop, 2 sources (products, reviews) -> duckdb:///shop.duckdb",
        f"{path}:5: sources[0].auth.value: not checked: environment variable SKIP_ENV_SHOP_KEY "
        "is not set",
        f"{path}:9: sources[1].url: not checked: environment variable SKIP_ENV_SHOP_BASE is not "
        "set",
    ]
    # a variable that is set is used, and a secret it holds is never printed
    done = run_cli("validate", "--skip-env", path, env={"SKIP_ENV_SHOP_KEY": SECRET})
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 2 and SECRET not in done.stdout
    assert server.hits == 0


def test_skip_env_still_reports_every_other_mistake(
    run_cli: RunCli, tmp_path: Path, server: CountingServer
) -> None:
    path = _file(tmp_path, server, "    records: $.reviews[*\n    primry_key: id\n")
    done = run_cli("validate", "--skip-env", path)
    assert done.returncode == 2
    assert done.stdout == ""
    errors = done.stderr.splitlines()
    assert errors[0].startswith(
        f"{path}:10: sources[1].records: '$.reviews[*' is not a JSONPath query: "
    )
    assert errors[1:] == [
        f"{path}:11: sources[1].primry_key: unknown key. HINT: did you mean `primary_key`?",
        f"{path}: 2 problems; nothing was sent",
    ]
    assert server.hits == 0


def test_plan_skip_env_shows_what_stands_for_an_unset_variable(
    run_cli: RunCli, tmp_path: Path, server: CountingServer
) -> None:
    path = _file(tmp_path, server)
    done = run_cli("plan", "--skip-env", path)
    assert done.returncode == 0, done.stderr
    assert "GET https://unset.invalid/v1/products/{products.id}/reviews" in done.stdout
    assert done.stderr.splitlines() == [
        f"{path}:5: sources[0].auth.value: not checked: environment variable SKIP_ENV_SHOP_KEY "
        "is not set",
        f"{path}:9: sources[1].url: not checked: environment variable SKIP_ENV_SHOP_BASE is not "
        "set",
    ]
    assert server.hits == 0


def test_a_value_that_needs_the_environment(
    run_cli: RunCli, tmp_path: Path, server: CountingServer
) -> None:
    path = _file(tmp_path, server, "    paginate: {type: page, max_pages: '${SKIP_ENV_PAGES}'}\n")
    unchecked = (
        f"{path}:10: sources[1].paginate.max_pages: not checked: environment variable "
        "SKIP_ENV_PAGES is not set"
    )
    done = run_cli("validate", "--skip-env", path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == (
        f"{path}: ok as far as it can be checked without the environment; these values, and "
        "the checks that need them, were not checked:"
    )
    assert len(lines) == 4 and unchecked in lines
    done = run_cli("plan", "--skip-env", path)
    assert done.returncode == 2
    assert unchecked in done.stderr.splitlines()
    assert done.stderr.splitlines()[-1] == (
        f"{path}: the plan needs these values: set the variables; nothing was sent"
    )
    assert server.hits == 0
