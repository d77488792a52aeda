"""The simulated API fleet: one aiohttp server listening on 127.0.0.1..127.0.0.{hosts}."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence

from aiohttp import web

from fetchpipe.sim.endpoints import SimState, build_app
from fetchpipe.sim.loopback import BACKLOG, BIND_ATTEMPTS, LoopbackServer
from fetchpipe.sim.seed import SEED_LATENCIES_MINUTES
from fetchpipe.sim.stats import FleetStats

__all__ = ["Fleet", "serve"]


class Fleet(LoopbackServer):
    """A local HTTP server answering on `hosts` loopback addresses that share one port.

    Host index i (0-based) is address ``127.0.0.{i+1}``. API n of the latency table is served
    at ``/api/{n}`` on host ``n % hosts`` (so on its own address when ``hosts >= len(table)``)
    and answers after ``latencies[n] * minute`` seconds. Every address also serves the test
    endpoints (``/status/...``, ``/ratelimit``, ``/reset``, ...) and two rate-limited APIs
    (``/limited/published/...``, ``/limited/silent/...``: :mod:`fetchpipe.sim.rate_limits`).

    Use ``async with Fleet(...) as fleet`` on the running loop, or
    ``with Fleet(...).running_in_thread() as fleet`` from synchronous code.
    """

    kind = "fleet"

    def __init__(
        self,
        minute: float = 0.1,
        hosts: int = 50,
        port: int = 0,
        *,
        latencies: Sequence[float] = SEED_LATENCIES_MINUTES,
        shutdown_timeout: float = 1.0,
    ) -> None:
        super().__init__(hosts, port)
        if minute < 0:
            raise ValueError("minute must be >= 0")
        if any(not lat >= 0 for lat in latencies):
            raise ValueError("latencies must be >= 0")
        self.minute = minute
        self.latencies: tuple[float, ...] = tuple(latencies)
        self.stats = FleetStats()
        self._shutdown_timeout = shutdown_timeout
        self._state = SimState(self.stats, minute, self.latencies)
        self._runner: web.AppRunner | None = None

    def api_host(self, n: int) -> int:
        """Host index serving API n."""
        return n % self.hosts

    def api_url(self, n: int) -> str:
        """URL of API n on its own host."""
        if not 0 <= n < len(self.latencies):
            raise ValueError(f"api index must be between 0 and {len(self.latencies) - 1}")
        return self.url(f"/api/{n}", host=self.api_host(n))

    @property
    def api_urls(self) -> list[str]:
        """URLs of all APIs of the latency table, in order."""
        return [self.api_url(n) for n in range(len(self.latencies))]

    def reset(self) -> None:
        """Clear the stats and the per-(path, key) counters (same as ``POST /__reset``)."""
        self._state.reset()

    def limited_counts(self, key: str = "", after: float = 0.0) -> dict[str, int]:
        """The requests of ``key`` the ``/limited/...`` endpoints let through and answered 429:
        ``{"accepted": n, "rejected": m}``, of those that came ``after`` seconds or more after
        the key's first (also ``GET /limited/counts?key=...&after=...``)."""
        return self._state.limited.counts(key, after)

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start listening on every address."""
        if self._runner is not None:
            raise RuntimeError("fleet is already running")
        runner = web.AppRunner(
            build_app(self._state),
            access_log=None,
            handle_signals=False,
            handler_cancellation=True,
            shutdown_timeout=self._shutdown_timeout,
        )
        await runner.setup()
        try:
            self._port = await self._bind(runner)
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner

    async def _bind(self, runner: web.AppRunner) -> int:
        attempts = BIND_ATTEMPTS if self._requested_port == 0 else 1
        for attempt in range(attempts):
            sites: list[web.TCPSite] = []
            address, port = self.address(0), self._requested_port
            try:
                first = web.TCPSite(runner, address, port, backlog=BACKLOG)
                sites.append(first)
                await first.start()
                port = int(runner.addresses[-1][1])
                for i in range(1, self.hosts):
                    address = self.address(i)
                    site = web.TCPSite(runner, address, port, backlog=BACKLOG)
                    sites.append(site)
                    await site.start()
                return port
            except OSError as exc:
                for site in sites:
                    if site in runner.sites:
                        await site.stop()
                if attempt == attempts - 1:
                    reason = os.strerror(exc.errno) if exc.errno else str(exc)
                    where = f"cannot listen on {address} port {port}"
                    raise OSError(exc.errno, f"{where}: {reason}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def close(self) -> None:
        """Stop listening and close all connections."""
        runner, self._runner = self._runner, None
        self._port = None
        if runner is not None:
            await runner.cleanup()

    @contextlib.contextmanager
    def running_in_thread(self, *, use_uvloop: bool = False) -> Iterator[Fleet]:
        """Run the fleet on its own event loop in a daemon thread while the block runs.

        Returns once the fleet is listening; stops it and joins the thread on exit.
        """
        ready = threading.Event()
        errors: list[BaseException] = []
        control: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

        async def main() -> None:
            stop = asyncio.Event()
            try:
                await self.start()
            except BaseException as exc:
                errors.append(exc)
                return
            finally:
                control.append((asyncio.get_running_loop(), stop))
                ready.set()
            try:
                await stop.wait()
            finally:
                await self.close()

        def target() -> None:
            try:
                with asyncio.Runner(loop_factory=_loop_factory(use_uvloop)) as runner:
                    runner.run(main())
            except BaseException as exc:  # reported to the caller, not printed
                errors.append(exc)
            finally:
                ready.set()

        thread = threading.Thread(target=target, name="fetchpipe-sim-fleet", daemon=True)
        thread.start()
        ready.wait()
        if errors:
            thread.join()
            raise errors[0]
        try:
            yield self
        finally:
            loop, stop = control[0]
            if thread.is_alive():
                with contextlib.suppress(RuntimeError):  # loop already closed
                    loop.call_soon_threadsafe(stop.set)
            thread.join()
            if errors:
                raise errors[0]


def _loop_factory(use_uvloop: bool) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if not use_uvloop:
        return None
    try:
        import uvloop  # lazy: installed on Linux and macOS only
    except ImportError:
        return None
    return uvloop.new_event_loop


def serve(host_count: int = 50, port: int = 0, minute: float = 0.1) -> None:
    """Run a fleet in the foreground until Ctrl-C (or SIGTERM), printing its base URLs."""

    async def main() -> None:
        async with Fleet(minute=minute, hosts=host_count, port=port) as fleet:
            print(f"fetchpipe sim: {fleet.hosts} hosts on port {fleet.port}, minute={minute}s")
            for url in fleet.base_urls:
                print(url)
            print(f"APIs: {fleet.api_urls[0]} .. {fleet.api_urls[-1]}")
            print("Press Ctrl-C to stop.", flush=True)
            stop = asyncio.Event()
            with contextlib.suppress(NotImplementedError, RuntimeError):
                asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
            await stop.wait()

    with (
        contextlib.suppress(KeyboardInterrupt),
        asyncio.Runner(loop_factory=_loop_factory(True)) as runner,
    ):
        runner.run(main())
