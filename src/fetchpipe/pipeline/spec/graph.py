"""The order of a pipeline's sources: every parent before the sources that read its records.

Pure functions over names, so that checking a pipeline file (a cycle is an error in the file)
and planning and running it (parents first) share one order without importing one another.
It lives with the model, below the plan and the runtime, because the model's checks need it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class DependencyCycle(ValueError):
    """Sources that depend on each other; ``cycle`` starts and ends with the same name."""

    def __init__(self, cycle: Sequence[str]) -> None:
        self.cycle = list(cycle)
        super().__init__(" -> ".join(self.cycle))


def dependency_order(parents: Mapping[str, Sequence[str]]) -> list[str]:
    """Names with every parent first, otherwise in the given order.

    Parents that are not keys of ``parents`` are ignored. Raises :class:`DependencyCycle`.
    """
    placed: list[str] = []
    done: set[str] = set()
    waiting = list(parents)
    while waiting:
        ready = next(
            (n for n in waiting if all(p in done or p not in parents for p in parents[n])), None
        )
        if ready is None:
            raise DependencyCycle(_cycle(waiting[0], parents))
        waiting.remove(ready)
        placed.append(ready)
        done.add(ready)
    return placed


def _cycle(start: str, parents: Mapping[str, Sequence[str]]) -> list[str]:
    path = [start]
    while True:
        following = next(p for p in parents[path[-1]] if p in parents)
        if following in path:
            return [*path[path.index(following) :], following]
        path.append(following)
