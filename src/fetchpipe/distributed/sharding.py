"""Which task a request runs in: pure values, tested without a network or a cluster.

The rule: a request's host (as the engine keys its limits: the lower-case host name, without
port, see :func:`fetchpipe.engine.limits.host_of`) maps to one of :data:`VIRTUAL_SHARDS`
virtual shards by a stable hash (BLAKE2b of its UTF-8 bytes: the same in every process and on
every machine, unlike Python's salted ``hash()``). A run groups the virtual shards into tasks by
estimated cost (:func:`plan_tasks`); every request of a host runs in one task, so the host's
concurrency and rate limits, its Retry-After pauses, its retry budget and its circuit breaker are
those of one engine, as in a local run. The port is left out on purpose: two ports of one host
share its limits in the engine, so they must share a task.

A host with far more work than a task's share may be split into ``k`` sub-shards, each in a
task of its own with the host's concurrency and rate divided by ``k`` (:class:`HostSplit`,
:func:`limits_for_task`); its breaker and retry budget then count per sub-shard.

``--shard K/N`` (:class:`ShardSelector`) keeps the hosts whose virtual shard is ``K`` modulo
``N``: ``N`` runs with ``K = 0 .. N-1`` cover every host exactly once. A pipeline is sharded by
*source group* (:func:`source_groups`): sources joined by a parent link or sharing their own
host run together, in the shard of the group's least host.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from fetchpipe._config import HostLimits, Limits
from fetchpipe._exceptions import ConfigError
from fetchpipe.engine.limits import host_of

VIRTUAL_SHARDS = 256
"""Virtual shards hosts map to. Fixed: a cache directory keeps one file per virtual shard, and
``--shard K/N`` runs agree on the mapping only while it stays the same."""

ASSUMED_LATENCY = 0.1
"""Seconds per response the cost model assumes (it only compares hosts with one another)."""


def virtual_shard(host: str) -> int:
    """The virtual shard of ``host`` (case-insensitive), ``0 <= shard < VIRTUAL_SHARDS``."""
    data = host.lower().encode("utf-8", "surrogatepass")
    digest = hashlib.blake2b(data, digest_size=8).digest()
    return int.from_bytes(digest, "big") % VIRTUAL_SHARDS


def shard_of_url(url: str) -> int | None:
    """The virtual shard of ``url``'s host, or ``None`` when it is not an http(s) URL."""
    host = host_of(url)
    return None if host is None else virtual_shard(host)


# --- --shard K/N -----------------------------------------------------------------------------

_SHARD_HINT = (
    "write --shard K/N with 0 <= K < N <= 256, e.g. --shard 0/4 .. --shard 3/4 "
    "(K counts from 0, as a Kubernetes job's completion index or an Airflow map index)"
)


@dataclass(frozen=True, slots=True)
class ShardSelector:
    """Shard ``index`` of ``count``: the hosts whose virtual shard is ``index`` mod ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.count <= VIRTUAL_SHARDS or not 0 <= self.index < self.count:
            raise ConfigError(
                f"shard {self.index}/{self.count} does not exist. HINT: {_SHARD_HINT}"
            )

    @classmethod
    def parse(cls, text: str) -> ShardSelector:
        """``"K/N"`` -> ``ShardSelector(K, N)``; raises :class:`ConfigError` with a hint."""
        index, sep, count = text.strip().partition("/")
        try:
            numbers = (int(index), int(count)) if sep else None
        except ValueError:
            numbers = None
        if numbers is None:
            raise ConfigError(f"{text[:40]!r} is not K/N. HINT: {_SHARD_HINT}")
        return cls(*numbers)

    def holds_host(self, host: str) -> bool:
        return virtual_shard(host) % self.count == self.index

    def holds(self, url: str) -> bool:
        """Whether ``url``'s host is in this shard (a URL without a host is in shard 0)."""
        shard = shard_of_url(url)
        return (0 if shard is None else shard) % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


# --- grouping virtual shards into tasks -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class HostSplit:
    """A host split into ``len(tasks)`` sub-shards: its ``i``-th request (in input order) goes to
    ``tasks[i % len(tasks)]``, each task holding the host's limits divided by that number."""

    host: str
    tasks: tuple[int, ...]

    @property
    def parts(self) -> int:
        return len(self.tasks)


@dataclass(frozen=True, slots=True)
class TaskPlan:
    """Which task each virtual shard, and each part of a split host, runs in."""

    tasks: int
    shard_tasks: tuple[int, ...]
    """The task of each virtual shard (every shard has one, also when no request was counted)."""
    splits: Mapping[str, HostSplit] = field(default_factory=dict)
    costs: tuple[float, ...] = ()
    """Each task's estimated cost (seconds if one engine fetched it alone at the assumed
    latency); empty when nothing was counted."""

    def task_of(self, host: str, nth: int = 0) -> int:
        """The task of the ``nth`` request (counted from 0, in input order) of ``host``."""
        split = self.splits.get(host)
        if split is not None:
            return split.tasks[nth % split.parts]
        return self.shard_tasks[virtual_shard(host)]

    def hosts_of(self, task: int, hosts: Iterable[str]) -> list[str]:
        """The hosts among ``hosts`` that have requests in ``task``."""
        return [
            host
            for host in hosts
            if (host in self.splits and task in self.splits[host].tasks)
            or (host not in self.splits and self.shard_tasks[virtual_shard(host)] == task)
        ]


def host_speed(limits: Limits, host: str, latency: float = ASSUMED_LATENCY) -> float:
    """Requests per second one engine can send ``host``: its concurrency over the latency,
    bounded by its rate limit."""
    own = limits.for_host(host)
    concurrency = own.max_concurrency or limits.max_concurrency
    speed = concurrency / latency
    if own.max_per_second is not None:
        speed = min(speed, own.max_per_second)
    return speed


def _parts_allowed(limits: Limits, host: str) -> int:
    """Into how many sub-shards ``host`` may be split: each keeps at least one request in
    flight (its concurrency divided) and a burst of one."""
    own = limits.for_host(host)
    bound = own.max_concurrency if own.max_concurrency is not None else limits.max_concurrency
    return max(1, bound)


def plan_tasks(
    host_counts: Mapping[str, int] | None,
    tasks: int,
    limits: Limits | None = None,
    *,
    split_heavy: bool = True,
) -> TaskPlan:
    """Group the virtual shards into ``tasks`` tasks of about equal estimated cost.

    ``host_counts``: requests per host (``None``: not counted, shards are dealt out in turn).
    A host's cost is its request count over :func:`host_speed`; a shard's, the sum of its
    hosts'. Shards go, costliest first, to the task with the least cost so far (LPT, within
    4/3 of the best grouping). With ``split_heavy``, a host costing more than a task's share
    (the total over ``tasks``) is split into as many sub-shards as it needs (at most
    ``tasks``, and at most its concurrency), each in a different task.
    """
    if tasks < 1:
        raise ConfigError(f"a run needs at least one task, got {tasks}")
    limits = limits or Limits()
    if not host_counts:
        return TaskPlan(tasks, tuple(shard % tasks for shard in range(VIRTUAL_SHARDS)))
    costs = {host: count / host_speed(limits, host) for host, count in host_counts.items()}
    share = sum(costs.values()) / tasks
    parts: dict[str, int] = {}
    if split_heavy and tasks > 1:
        for host, cost in costs.items():
            wanted = min(tasks, math.ceil(cost / share - 1e-9), _parts_allowed(limits, host))
            if wanted > 1 and host_counts[host] >= wanted:
                parts[host] = wanted
    shard_costs = [0.0] * VIRTUAL_SHARDS
    for host, cost in costs.items():
        if host not in parts:
            shard_costs[virtual_shard(host)] += cost
    # (cost, kind, name): kind 0 a virtual shard, 1 a split host; sorted costliest first.
    items: list[tuple[float, int, str]] = [
        (cost, 0, str(shard)) for shard, cost in enumerate(shard_costs)
    ]
    items += [(costs[host] / k, 1, host) for host, k in parts.items() for _ in range(k)]
    items.sort(key=lambda item: (-item[0], item[1], item[2]))
    loads = [0.0] * tasks
    shard_tasks = [0] * VIRTUAL_SHARDS
    placed: dict[str, list[int]] = {host: [] for host in parts}
    for cost, kind, name in items:
        taken = placed.get(name, ()) if kind == 1 else ()
        task = min((t for t in range(tasks) if t not in taken), key=lambda t: (loads[t], t))
        loads[task] += cost
        if kind == 0:
            shard_tasks[int(name)] = task
        else:
            placed[name].append(task)
    splits = {host: HostSplit(host, tuple(chosen)) for host, chosen in placed.items()}
    return TaskPlan(tasks, tuple(shard_tasks), splits, tuple(loads))


def divided(limits: HostLimits, parts: int, default_concurrency: int) -> HostLimits:
    """``limits`` shared by ``parts`` sub-shards: concurrency and rate divided by ``parts``
    (concurrency rounded down, at least 1), the burst too (at least 1). The quota stays whole:
    its ledger in the state directory is one for every process that counts it; ``adaptive``
    stays as it was asked."""
    concurrency = limits.max_concurrency or default_concurrency
    return dataclasses.replace(
        limits,
        max_concurrency=max(1, concurrency // parts),
        max_per_second=None if limits.max_per_second is None else limits.max_per_second / parts,
        burst=max(1, limits.burst // parts),
    )


def limits_for_task(limits: Limits, plan: TaskPlan, task: int) -> Limits:
    """``limits`` as ``task`` applies them: the split hosts it holds get their divided share."""
    own = {
        host: divided(limits.for_host(host), split.parts, limits.max_concurrency)
        for host, split in plan.splits.items()
        if task in split.tasks
    }
    if not own:
        return limits
    return dataclasses.replace(limits, hosts={**limits.hosts, **own})


def count_hosts(urls: Iterable[str]) -> dict[str, int]:
    """Requests per host of ``urls`` (a URL without a host counts under ``""``)."""
    counts: dict[str, int] = {}
    for url in urls:
        host = host_of(url) or ""
        counts[host] = counts.get(host, 0) + 1
    return counts


# --- pipelines: source groups ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SourceLink:
    """What the grouping knows of a pipeline source: its name, its own URL (a template: its
    host is fixed, as a parent reference may not be in the host) and its parent's name."""

    name: str
    url: str
    parent: str | None = None

    @property
    def host(self) -> str:
        """The source's own host as the engine keys its limits (``""`` for no http(s) URL).
        Next-page links to other hosts (``allow_cross_origin``) are not counted."""
        return host_of(self.url) or ""


@dataclass(frozen=True, slots=True)
class SourceGroup:
    """Sources that run in one shard: joined by parent links or sharing a host."""

    sources: tuple[str, ...]
    """In the order the sources were given."""
    hosts: tuple[str, ...]
    """Sorted; never empty."""

    @property
    def virtual_shard(self) -> int:
        """The virtual shard of the group's least host: the group's place in every process."""
        return virtual_shard(self.hosts[0])

    def shard(self, count: int) -> int:
        """The shard (of ``count``) that runs the group."""
        return self.virtual_shard % count

    def in_shard(self, selector: ShardSelector) -> bool:
        return self.shard(selector.count) == selector.index


def source_groups(links: Sequence[SourceLink]) -> tuple[SourceGroup, ...]:
    """The sources of a pipeline in groups: two sources are in one group when one is the
    other's parent or they have the same host (and so on, transitively).

    Every source is in exactly one group; a parent and its children, and every source of a
    host, are in one, so a shard holding a group fetches each of its hosts alone (per-host
    limits stay exact) and has the parent records its children need. Groups come in the order
    of their first source. A parent not among ``links`` is ignored.

    A dozen lines of union-find written here rather than a graph library: the graphs are a
    pipeline's sources (tens), and nothing else in the project needs one.
    """
    names = [link.name for link in links]
    root = {name: name for name in names}

    def find(name: str) -> str:
        while root[name] != name:
            root[name] = root[root[name]]
            name = root[name]
        return name

    def join(a: str, b: str) -> None:
        first, second = sorted((find(a), find(b)), key=names.index)
        root[second] = first

    by_host: dict[str, str] = {}
    for link in links:
        if link.parent is not None and link.parent in root:
            join(link.name, link.parent)
        join(link.name, by_host.setdefault(link.host, link.name))
    members: dict[str, list[SourceLink]] = {}
    for link in links:
        members.setdefault(find(link.name), []).append(link)
    return tuple(
        SourceGroup(
            tuple(link.name for link in group), tuple(sorted({link.host for link in group}))
        )
        for group in members.values()
    )


def sources_in_shard(links: Sequence[SourceLink], selector: ShardSelector) -> list[str]:
    """The names of the sources ``selector``'s shard runs (in the order given): ``N`` shards
    cover every source exactly once."""
    chosen = {
        name for group in source_groups(links) if group.in_shard(selector) for name in group.sources
    }
    return [link.name for link in links if link.name in chosen]
