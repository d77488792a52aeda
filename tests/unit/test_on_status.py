"""``on_status`` in a pipeline file: statuses and actions checked, each problem on its line."""

from __future__ import annotations

import textwrap

import pytest

from fetchpipe.pipeline import PipelineError
from fetchpipe.pipeline.spec.config import PipelineSpec, _build
from fetchpipe.pipeline.spec.loading import load_toml, load_yaml
from fetchpipe.pipeline.spec.status import status_actions

SOURCE = """\
name: p
sources:
  - name: customers
    url: https://x.test/customers/1
    on_status:
"""


def _problems(block: str) -> list[str]:
    text = SOURCE + textwrap.indent(textwrap.dedent(block), "      ")
    with pytest.raises(PipelineError) as caught:
        _build(load_yaml(text, "p.yaml"), {})
    return str(caught.value).splitlines()


def test_yaml_numbers_and_toml_strings_give_the_same_actions() -> None:
    yaml_text = SOURCE + "      404: skip\n      410: skip\n      500: fail\n"
    toml_text = (
        'name = "p"\n[[sources]]\nname = "customers"\nurl = "https://x.test/customers/1"\n'
        'on_status = {404 = "skip", "410" = "skip", 500 = "fail"}\n'
    )
    from_yaml = PipelineSpec.from_dict(load_yaml(yaml_text).data).sources[0].on_status
    from_toml = PipelineSpec.from_dict(load_toml(toml_text).data).sources[0].on_status
    assert from_yaml == from_toml == {404: "skip", 410: "skip", 500: "fail"}


def test_no_block_skips_nothing() -> None:
    spec = PipelineSpec.from_dict(
        {"name": "p", "sources": [{"name": "a", "url": "https://x.test/a"}]}
    )
    assert spec.sources[0].on_status == {}


def test_each_bad_status_and_action_is_reported_on_its_line() -> None:
    lines = _problems(
        """\
        404: skip
        4xx: skip
        200: skip
        410: skp
        503: retry
        """
    )
    assert lines == [
        "p.yaml:7: sources[0].on_status[\"4xx\"]: '4xx' is not an HTTP error status. "
        "HINT: write a status from 400 to 599, as 404",
        "p.yaml:8: sources[0].on_status[\"200\"]: '200' is not an HTTP error status. "
        "HINT: write a status from 400 to 599, as 404",
        "p.yaml:9: sources[0].on_status[\"410\"]: 'skp' is not an action: use skip or fail. "
        "HINT: did you mean `skip`?",
        "p.yaml:10: sources[0].on_status[\"503\"]: 'retry' is not an action: use skip or fail",
    ]


@pytest.mark.parametrize("value", [["404"], "404: skip", 404])
def test_a_block_that_is_not_a_mapping_is_refused(value: object) -> None:
    with pytest.raises(ValueError, match="must be a mapping of status: action"):
        status_actions(value)


@pytest.mark.parametrize("key", [True, 399, 600, "", " 4 04", -404, 404.5])
def test_keys_outside_the_error_statuses_are_refused(key: object) -> None:
    with pytest.raises(ValueError, match="is not an HTTP error status"):
        status_actions({key: "skip"})


def test_the_json_schema_has_on_status() -> None:
    block = PipelineSpec.json_schema()["$defs"]["Source"]["properties"]["on_status"]
    assert block["additionalProperties"]["enum"] == ["skip", "fail"]
    assert block["propertyNames"] == {"pattern": "^[45][0-9][0-9]$"}
