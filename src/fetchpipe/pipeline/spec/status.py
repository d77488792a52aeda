"""A source's ``on_status`` block: what a final error status of one of its requests does.

::

    on_status: {404: skip, 410: skip}

``skip``: the request yields no records, and the source counts it as skipped instead of
failing (a product without reviews, a deleted user). ``fail`` (what every status not named
does): the source fails. The action applies to the final answer: a status the retry policy
retries (429, 5xx) is retried first. Keys are HTTP error statuses (400 to 599), written as
numbers (YAML) or strings (TOML keys are strings).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field

from fetchpipe.pipeline.spec.errors import Problem, Problems, did_you_mean

StatusAction = Literal["skip", "fail"]
ACTIONS: tuple[StatusAction, ...] = ("skip", "fail")
_LOWEST, _HIGHEST = 400, 599


def status_actions(value: object) -> dict[int, StatusAction]:
    """``value`` as status -> action; :class:`Problems` naming each bad key or action."""
    if not isinstance(value, Mapping):
        raise Problems([Problem((), "must be a mapping of status: action, as {404: skip}")])
    found: dict[int, StatusAction] = {}
    problems: list[Problem] = []
    for key, action in value.items():
        status = _status(key)
        if status is None:
            problems.append(
                Problem(
                    (str(key),),
                    f"{str(key)[:20]!r} is not an HTTP error status. HINT: write a status from "
                    f"{_LOWEST} to {_HIGHEST}, as 404",
                )
            )
        elif action not in ACTIONS:
            shown = repr(action) if isinstance(action, str | int | float | None) else "this"
            problems.append(
                Problem(
                    (str(key),),
                    f"{shown[:30]} is not an action: use skip or fail"
                    f"{did_you_mean(str(action), ACTIONS)}",
                )
            )
        else:
            found[status] = action
    if problems:
        raise Problems(problems)
    return found


def _status(key: object) -> int | None:
    if isinstance(key, bool):
        return None
    if isinstance(key, str) and key.strip().isdigit():
        key = int(key)
    if isinstance(key, int) and _LOWEST <= key <= _HIGHEST:
        return key
    return None


StatusActions = Annotated[
    dict[int, StatusAction],
    BeforeValidator(status_actions),
    Field(
        description="What a final error status does: skip (no records, counted as skipped) or "
        "fail (the default), e.g. {404: skip, 410: skip}.",
        json_schema_extra={"propertyNames": {"pattern": "^[45][0-9][0-9]$"}},
    ),
]
