"""Checking a pipeline without its environment (``skip_env``): unset variables are listed,
not errors; everything else is checked as usual; such a pipeline is not run."""

from __future__ import annotations

import textwrap

import pytest

from fetchpipe import ConfigError
from fetchpipe.pipeline import PipelineError
from fetchpipe.pipeline.runtime.runner import PipelineRunner
from fetchpipe.pipeline.spec.config import PipelineSpec, _build
from fetchpipe.pipeline.spec.errors import NeedsEnvironment
from fetchpipe.pipeline.spec.loading import UNSET, UNSET_URL, load_yaml, substitute

FILE = """\
name: shop
sources:
  - name: products
    url: ${SHOP_BASE}/v1/products
    auth:
      type: oauth2_client_credentials
      token_url: ${SHOP_BASE}/oauth/token
      client_id: ${SHOP_CLIENT_ID}
      client_secret: ${SHOP_CLIENT_SECRET}
    params: {region: "${REGION}"}
  - name: reviews
    url: https://${SHOP_HOST}/v1/products/{products.id}/reviews
"""


def _load(text: str, env: dict[str, str], skip_env: bool) -> PipelineSpec:
    return _build(load_yaml(textwrap.dedent(text), "pipeline.yaml"), env, skip_env=skip_env)


def test_without_the_flag_each_unset_variable_is_an_error_at_its_line() -> None:
    with pytest.raises(PipelineError) as caught:
        _load(FILE, {"REGION": "eu"}, skip_env=False)
    lines = str(caught.value).splitlines()
    assert len(lines) == 5
    assert lines[0] == (
        "pipeline.yaml:4: sources[0].url: environment variable SHOP_BASE is not set. "
        "HINT: export SHOP_BASE=... before running, or write the value in the file"
    )
    assert lines[-1].startswith("pipeline.yaml:12: sources[1].url: environment variable SHOP_HOST")


def test_with_the_flag_the_unset_variables_are_listed_and_set_ones_used() -> None:
    pipeline = _load(FILE, {"REGION": "eu"}, skip_env=True)
    assert pipeline.unset_variables == [
        "SHOP_BASE",
        "SHOP_CLIENT_ID",
        "SHOP_CLIENT_SECRET",
        "SHOP_HOST",
    ]
    assert [p.render("pipeline.yaml") for p in pipeline.unchecked] == [
        "pipeline.yaml:4: sources[0].url: not checked: environment variable SHOP_BASE is not set",
        "pipeline.yaml:7: sources[0].auth.token_url: not checked: environment variable "
        "SHOP_BASE is not set",
        "pipeline.yaml:8: sources[0].auth.client_id: not checked: environment variable "
        "SHOP_CLIENT_ID is not set",
        "pipeline.yaml:9: sources[0].auth.client_secret: not checked: environment variable "
        "SHOP_CLIENT_SECRET is not set",
        "pipeline.yaml:12: sources[1].url: not checked: environment variable SHOP_HOST is not set",
    ]
    products, reviews = pipeline.sources
    assert products.url == f"{UNSET_URL}/v1/products"
    assert products.params == {"region": "eu"}
    assert reviews.url == f"https://{UNSET}/v1/products/{{products.id}}/reviews"
    assert reviews.parent == "products"  # the checks across sources ran
    assert UNSET not in pipeline.secret_values()
    assert pipeline.redact(products.url) == products.url


def test_with_the_flag_the_other_mistakes_are_still_errors() -> None:
    text = FILE + "    write: merge\n    primry_key: id\n"
    with pytest.raises(PipelineError) as caught:
        _load(text, {}, skip_env=True)
    assert not isinstance(caught.value, NeedsEnvironment)
    assert str(caught.value).splitlines() == [
        "pipeline.yaml:14: sources[1].primry_key: unknown key. HINT: did you mean `primary_key`?",
    ]
    text = FILE + "  - name: products\n    url: https://x.test/\n"
    with pytest.raises(PipelineError, match=r"^pipeline.yaml:13: sources\[2\].name: duplicate"):
        _load(text, {}, skip_env=True)


def test_a_value_that_must_be_a_number_needs_the_environment() -> None:
    text = FILE.replace(
        "    params:", "    paginate: {type: page, max_pages: '${PAGES}'}\n    params:"
    )
    with pytest.raises(NeedsEnvironment) as caught:
        _load(text, {"REGION": "eu"}, skip_env=True)
    assert (
        "pipeline.yaml:10: sources[0].paginate.max_pages: not checked: environment variable "
        "PAGES is not set"
    ) in str(caught.value).splitlines()
    assert len(caught.value.problems) == 6
    with pytest.raises(NeedsEnvironment):
        PipelineSpec.from_dict(
            {"name": "p", "sources": [{"name": "a", "url": "https://x.test/", "write": "${W}"}]},
            env={},
            skip_env=True,
        )


def test_a_pipeline_loaded_without_its_environment_is_not_run() -> None:
    pipeline = _load(FILE, {"REGION": "eu"}, skip_env=True)
    with pytest.raises(ConfigError, match=r"can be checked, not run\. HINT: set SHOP_BASE, "):
        PipelineRunner(pipeline)


def test_substitute_keeps_escapes_and_reads_set_variables_when_skipping() -> None:
    done = substitute({"a": "$${X}", "b": "${SET}", "url": "${U}/x"}, {"SET": "v"}, skip_unset=True)
    assert done.data == {"a": "${X}", "b": "v", "url": f"{UNSET_URL}/x"}
    assert done.problems == ()
    assert done.unset_names == {"U"}
    assert done.secrets == {"v"}
