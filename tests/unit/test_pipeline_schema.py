"""The JSON Schema of pipeline files (``fetchpipe schema``) agrees with the validation: what a
run accepts, an editor using the schema does not flag, and what a run refuses, it flags."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from fetchpipe.pipeline import Pipeline, PipelineError


def _file(**source: Any) -> dict[str, Any]:
    return {"name": "p", "sources": [{"name": "a", "url": "https://api.x.test/a", **source}]}


def _schema_accepts(data: dict[str, Any]) -> bool:
    schema = Pipeline.json_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema).is_valid(data)


def _validation_accepts(data: dict[str, Any]) -> bool:
    try:
        Pipeline.from_dict(data, env={})
    except PipelineError:
        return False
    return True


@pytest.mark.parametrize(
    "method", ["GET", "get", "post", "POST", "Post", "pUt", "patch", "DELETE", "head"]
)
def test_a_method_in_any_case_is_valid_for_both(method: str) -> None:
    data = _file(method=method, idempotent=True)
    assert _validation_accepts(data)
    assert _schema_accepts(data)


@pytest.mark.parametrize("method", ["FETCH", "gett", "", "POST ", 1])
def test_a_method_that_is_not_one_is_refused_by_both(method: object) -> None:
    data = _file(method=method)
    assert not _validation_accepts(data)
    assert not _schema_accepts(data)


def test_the_schema_still_offers_the_methods_as_written_in_the_readme() -> None:
    method = Pipeline.json_schema()["$defs"]["Source"]["properties"]["method"]
    offered = [v for part in method["anyOf"] for v in part.get("enum", ())]
    assert offered == ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
    assert "any case" in method["description"]
