"""The pipeline key ``report`` (the request log's sample): its checks, its schema, and that it
does not change the hash an interrupted run is resumed by."""

from __future__ import annotations

import pytest

from fetchpipe.pipeline import PipelineError
from fetchpipe.pipeline.spec.config import PipelineSpec, _build
from fetchpipe.pipeline.spec.loading import load_yaml

TOP = """\
name: p
sources:
  - name: items
    url: https://x.test/items
"""


def test_the_defaults_keep_every_request() -> None:
    spec = _build(load_yaml(TOP, "p.yaml"), {})
    assert (spec.report.sample, spec.report.slow) == (1.0, 1.0)


def test_a_sample_and_a_slow_bound_are_read() -> None:
    spec = _build(load_yaml(TOP + "report: {sample: 0.05, slow: 2.5}\n", "p.yaml"), {})
    assert (spec.report.sample, spec.report.slow) == (0.05, 2.5)


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ("report: {sample: 0}", "p.yaml:5: report.sample: "),
        ("report: {sample: 1.5}", "p.yaml:5: report.sample: "),
        ("report: {slow: -1}", "p.yaml:5: report.slow: "),
        ("report: {sampel: 0.1}", "did you mean `sample`?"),
    ],
)
def test_bad_values_name_their_line_and_field(block: str, message: str) -> None:
    with pytest.raises(PipelineError) as caught:
        _build(load_yaml(TOP + block + "\n", "p.yaml"), {})
    assert message in str(caught.value)


def test_the_request_log_settings_leave_the_resume_hash_alone() -> None:
    plain = _build(load_yaml(TOP, "p.yaml"), {})
    sampled = _build(load_yaml(TOP + "report: {sample: 0.1}\n", "p.yaml"), {})
    assert plain.config_hash() == sampled.config_hash()


def test_the_json_schema_has_the_report_block() -> None:
    schema = PipelineSpec.json_schema()
    block = schema["$defs"]["ReportConfig"]["properties"]
    assert block["sample"]["exclusiveMinimum"] == 0 and block["sample"]["maximum"] == 1
    assert "report" in schema["properties"]
