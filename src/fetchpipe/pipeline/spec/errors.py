"""Problems found in a pipeline file, each with its field path and, when known, its line.

A :class:`PipelineError` renders one problem a line::

    pipeline.yaml:14: sources[1].paginate.cursor_path: field required

Values read from the environment (``${VAR}``) are replaced by ``***`` in every message, and
credentials in the URLs it quotes are redacted (see :func:`fetchpipe._redact.redact_text`).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace

from fetchpipe._exceptions import ConfigError
from fetchpipe._redact import redact_text

DataPath = tuple[str | int, ...]
"""A place in the file's data: mapping keys and sequence indices, from the top."""

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def format_path(path: DataPath) -> str:
    """``("sources", 1, "paginate", "cursor_path")`` as ``sources[1].paginate.cursor_path``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part)}]"
    return text


def suggest(word: str, choices: Iterable[str]) -> str | None:
    """The choice closest to ``word`` when one is close enough to be a likely misspelling."""
    lowered = {choice.lower(): choice for choice in choices}
    word = word.lower()
    found = difflib.get_close_matches(word, list(lowered), n=1, cutoff=0.6)
    if found:
        return lowered[found[0]]
    starts = [choice for key, choice in lowered.items() if len(word) >= 3 and key.startswith(word)]
    return starts[0] if len(starts) == 1 else None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``. HINT: did you mean `x`?`` when a choice is close to ``word`` (``x` or `y`` when a few
    start with it), else an empty string."""
    choices = list(choices)
    found = suggest(word, choices)
    if found is not None:
        return f". HINT: did you mean `{found}`?"
    starts = [c for c in choices if len(word) >= 3 and c.lower().startswith(word.lower())]
    if 1 < len(starts) <= 3:
        return f". HINT: did you mean {' or '.join(f'`{c}`' for c in starts)}?"
    return ""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a pipeline: where (data path, line) and what."""

    path: DataPath
    message: str
    line: int | None = None

    def under(self, prefix: DataPath) -> Problem:
        """The same problem, its path below ``prefix``."""
        return replace(self, path=(*prefix, *self.path))

    def render(self, file: str | None = None) -> str:
        where = [part for part in (file, str(self.line) if self.line else None) if part]
        field = format_path(self.path)
        parts = [":".join(where)] if where else []
        if field:
            parts.append(field)
        parts.append(self.message)
        return ": ".join(parts)


class Problems(ValueError):
    """Raised inside model validators: problems with paths relative to the validated model.

    Pydantic wraps it in a ``ValidationError``; :mod:`fetchpipe.pipeline.spec.config` unwraps it
    so each problem keeps its own field path.
    """

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(p.render() for p in self.problems))


class PipelineError(ConfigError):
    """A pipeline file (or mapping) is not valid: one or more problems, each on its line."""

    def __init__(
        self,
        problems: Sequence[Problem],
        file: str | None = None,
        secrets: Collection[str] = (),
    ) -> None:
        self.problems = tuple(problems)
        self.file = file
        text = "\n".join(p.render(file) for p in self.problems)
        super().__init__(redact_text(text, secrets))


class NeedsEnvironment(PipelineError):
    """Loading with ``skip_env``: the file has no problem of its own, but cannot be read into
    a pipeline without the values of its unset variables (a number or a choice from one)."""
