"""Pipeline files read YAML plain scalars as YAML 1.2 does: ``NO`` is a country, not false."""

from __future__ import annotations

import math
import textwrap
from typing import Any

import pytest
import yaml

from fetchpipe.pipeline import PipelineError
from fetchpipe.pipeline.plan.plan import build_plan
from fetchpipe.pipeline.spec.config import PipelineSpec, _build
from fetchpipe.pipeline.spec.loading import load_yaml


@pytest.mark.parametrize(
    ("written", "read"),
    [
        # YAML 1.1's booleans are strings
        *((word, word) for word in ("yes", "no", "on", "off", "y", "n", "NO", "Yes", "OFF")),
        # only true and false are booleans
        *(("true", True), ("True", True), ("TRUE", True), ("false", False), ("FALSE", False)),
        # digits where 1.1 and 1.2 disagree stay as written
        *(("0777", "0777"), ("01234", "01234"), ("1:20", "1:20"), ("1_000", "1_000")),
        ("2024-01-01", "2024-01-01"),
        ("2024-01-01T10:00:00+02:00", "2024-01-01T10:00:00+02:00"),
        # YAML 1.2 numbers and null
        *(("0", 0), ("-12", -12), ("+3", 3), ("0o17", 15), ("0x1F", 31)),
        *(("1.5", 1.5), ("1e3", 1000.0), ("-.5", -0.5), ("1.", 1.0), (".inf", math.inf)),
        *(("~", None), ("null", None), ("", None)),
        ("=", "="),
        # quoted is always a string
        *(("'yes'", "yes"), ('"true"', "true"), ("'1'", "1")),
        # explicit tags still say what they say
        *(("!!bool yes", True), ("!!int 0777", 777), ("!!str 1", "1")),
    ],
)
def test_plain_scalars_are_read_as_yaml_1_2(written: str, read: Any) -> None:
    value = load_yaml(f"key: {written}\n").data["key"]
    assert value == read and type(value) is type(read)


def test_nan_is_a_float() -> None:
    assert math.isnan(load_yaml("key: .nan\n").data["key"])


def test_keys_are_not_booleans_either_and_merge_keys_still_work() -> None:
    data = load_yaml("on: 1\nno: 2\nbase: &b {a: 1}\nmore:\n  <<: *b\n  c: 2\n").data
    assert data == {"on": 1, "no": 2, "base": {"a": 1}, "more": {"a": 1, "c": 2}}


def test_the_yaml_module_itself_is_left_as_it_was() -> None:
    load_yaml("a: yes\n")
    assert yaml.safe_load("a: yes\nb: 0777\n") == {"a": True, "b": 511}


def test_a_bad_explicit_integer_is_reported_at_its_line() -> None:
    with pytest.raises(PipelineError) as caught:
        load_yaml("name: x\nlimit: !!int ten\n", "pipeline.yaml")
    assert str(caught.value) == "pipeline.yaml:2: YAML syntax error: 'ten' is not an integer"


FILE = """\
name: shop
sources:
  - name: products
    url: https://api.shop.test/v1/products
    params: {country: NO, express: yes, zip: 01234, n: 50, new: true}
    paginate: {type: offset, limit: 0100}
    write: {bad: on}
"""


def _load(text: str) -> PipelineSpec:
    return _build(load_yaml(textwrap.dedent(text), "pipeline.yaml"), {})


def test_the_parameters_are_sent_as_written() -> None:
    pipeline = _load(FILE.replace("    write: {bad: on}\n", ""))
    source = pipeline.sources[0]
    assert source.params == {
        "country": "NO",
        "express": "yes",
        "zip": "01234",
        "n": 50,
        "new": True,
    }
    assert source.paginate.limit == 100  # type: ignore[union-attr]  # offset pagination
    (planned,) = build_plan(pipeline).sources
    assert planned.url == (
        "https://api.shop.test/v1/products"
        "?country=NO&express=yes&zip=01234&n=50&new=true&offset=0&limit=100"
    )


def test_errors_keep_their_lines_after_1_2_scalars() -> None:
    with pytest.raises(PipelineError) as caught:
        _load(FILE)
    assert str(caught.value).startswith("pipeline.yaml:7: sources[0].write: ")
