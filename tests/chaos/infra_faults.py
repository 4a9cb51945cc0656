"""The infrastructure faults of the suite: the broker restarts, a store stalls, a consumer is out.

Each one is injected while the driver keeps orders flowing, and each watches `/readyz` of the
services it affects, every half second, from a little before the fault until they answer ready
again: a service must say it cannot work while it cannot (503, or no answer at all when it is not
running) and say it can once it can. A fault whose services never reported not-ready, or did
not come back ready, raises (the scenario is then not ok) with what was seen.

- `broker_restart`: `rabbitmqctl stop_app` on the system's own node, `down` seconds, `start_app`.
  Connections, channels, consumers, exclusive queues and unconfirmed publishes go; the durable
  topology and the persistent messages stay. Every bus service must reconnect, declare again,
  consume again and its relay publish again. Refused on the machine's shared broker.
- `store_stall`: SIGSTOP the embedded Mongo of one service (`System.OWN_MONGO`), `seconds`,
  SIGCONT: its requests and handlers wait or time out (`kit.mongo` timeouts) and retry.
- `consumer_outage`: one service stopped (SIGTERM, as a deployment would) for `seconds` while the
  others keep publishing to its queue; then started: the backlog drains, nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from bus import BusConnection, Names

from .system import BUS_SERVICES, OWN_MONGO, System

POLL_INTERVAL = 0.5
READY_AGAIN_TIMEOUT = 120.0


@dataclass
class ReadinessWatch:
    """`/readyz` of some services, polled in the background: (seconds since start, code)."""

    system: System
    services: tuple[str, ...]
    seen: dict[str, list[tuple[float, int | None]]] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    _task: asyncio.Task[None] | None = None

    def start(self) -> ReadinessWatch:
        self.seen = {name: [] for name in self.services}
        self.started = time.monotonic()
        self._task = asyncio.create_task(self._poll())
        return self

    async def _poll(self) -> None:
        async with httpx.AsyncClient(timeout=3.0) as client:
            while True:
                answers = await asyncio.gather(*(self._probe(client, n) for n in self.services))
                at = time.monotonic() - self.started
                for name, code in zip(self.services, answers, strict=True):
                    self.seen[name].append((at, code))
                await asyncio.sleep(POLL_INTERVAL)

    async def _probe(self, client: httpx.AsyncClient, name: str) -> int | None:
        try:
            return (await client.get(self.system.url(name) + "/readyz")).status_code
        except httpx.HTTPError:
            return None  # not answering at all: not ready either

    def now(self) -> float:
        return time.monotonic() - self.started

    async def until_ready(self, since: float, timeout: float = READY_AGAIN_TIMEOUT) -> None:
        """Wait until every service answered 200 after `since` (seconds on this watch)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.ready_after(name, since) is not None for name in self.services):
                return
            await asyncio.sleep(POLL_INTERVAL)

    def not_ready_between(self, name: str, start: float, end: float) -> int:
        """How many polls of `name` answered anything but 200 within [start, end]."""
        return sum(1 for at, code in self.seen[name] if start <= at <= end and code != 200)

    def ready_after(self, name: str, since: float) -> float | None:
        """Seconds after `since` of the first 200 of `name`, None if none yet."""
        return next(
            (at - since for at, code in self.seen[name] if at >= since and code == 200), None
        )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def verdict(self, fault_start: float, fault_end: float) -> dict[str, Any]:
        """Per service: polls not ready during the fault, seconds to ready after it."""
        report: dict[str, Any] = {}
        problems: list[str] = []
        for name in self.services:
            during = self.not_ready_between(name, fault_start, fault_end)
            # Readiness answers the state of a moment ago (the checks' timeouts): a 503 that
            # comes a poll after the fault ended still reports the fault.
            during += self.not_ready_between(name, fault_end, fault_end + 1.0)
            after = self.ready_after(name, fault_end)
            report[name] = {
                "not_ready_polls": during,
                "ready_after_s": None if after is None else round(after, 1),
            }
            if during == 0:
                problems.append(f"{name} never reported not-ready during the fault")
            if after is None:
                problems.append(f"{name} not ready again after the fault")
        if problems:
            raise AssertionError(f"{'; '.join(problems)}: {report}")
        return report


async def broker_restart(system: System, down: float = 10.0) -> dict[str, Any]:
    """`stop_app`, `down` seconds, `start_app` on the system's own broker node."""
    node = system.node
    if node is None:
        raise RuntimeError(
            f"no dedicated broker node ({system.broker_note}): the broker restart would stop"
            " the machine's shared broker, which other people's tests use"
        )
    services = BUS_SERVICES
    watch = ReadinessWatch(system, services).start()
    try:
        await asyncio.sleep(1.0)
        fault_start = watch.now()
        await node.stop_app()
        stopped = watch.now()
        await asyncio.sleep(down)
        await node.start_app()
        fault_end = watch.now()
        await watch.until_ready(fault_end)
    finally:
        await watch.stop()
    readiness = watch.verdict(fault_start, fault_end)
    await system.wait_ready(list(services), timeout=60)  # and still ready
    return {
        "node": node.name,
        "stop_app_s": round(stopped - fault_start, 1),
        "down_s": round(fault_end - fault_start, 1),
        "readiness": readiness,
    }


async def store_stall(
    system: System, service: str = OWN_MONGO[0], seconds: float = 10.0
) -> dict[str, Any]:
    """SIGSTOP the embedded Mongo of `service` for `seconds`, then SIGCONT."""
    if service not in OWN_MONGO:
        raise ValueError(f"{service} shares the system's Mongo: stall one of {OWN_MONGO}")
    store = system.processes[f"mongo-{service}"]
    watch = ReadinessWatch(system, (service,)).start()
    try:
        await asyncio.sleep(1.0)
        fault_start = watch.now()
        os.kill(store.pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(seconds)
        finally:
            os.kill(store.pid, signal.SIGCONT)
        fault_end = watch.now()
        await watch.until_ready(fault_end)
    finally:
        await watch.stop()
    readiness = watch.verdict(fault_start, fault_end)
    return {
        "service": service,
        "store_pid": store.pid,
        "stalled_s": round(fault_end - fault_start, 1),
        "readiness": readiness,
    }


async def queue_depth(connection: BusConnection, queue: str) -> int:
    """Messages ready in `queue` (a passive declare on a channel of its own)."""
    channel = await connection.channel()
    try:
        declared = await channel.declare_queue(queue, passive=True)
        result = declared.declaration_result
        return int(result.message_count or 0)
    finally:
        with contextlib.suppress(Exception):
            await channel.close()


async def consumer_outage(
    system: System, connection: BusConnection, service: str = "inventory", seconds: float = 60.0
) -> dict[str, Any]:
    """Stop `service` for `seconds` while orders flow, start it: its backlog drains."""
    queue = Names.of(system.bus_config(service)).queue
    watch = ReadinessWatch(system, (service,)).start()
    try:
        await asyncio.sleep(1.0)
        fault_start = watch.now()
        process = system.processes[service]
        process.send_signal(signal.SIGTERM)  # a deployment's stop: drain, close, exit
        try:
            await asyncio.to_thread(process.wait, 30)
        except Exception:  # noqa: BLE001 - it did not stop in time: the kernel stops it
            system.kill(service)
        await asyncio.sleep(seconds)
        backlog = await queue_depth(connection, queue)
        started = time.monotonic()
        ready_after = await system.restart(service)
        fault_end = watch.now()
        await watch.until_ready(fault_end)
    finally:
        await watch.stop()
    readiness = watch.verdict(fault_start, fault_end)
    # The backlog drains: the queue holds (almost) nothing ready again.
    deadline = time.monotonic() + READY_AGAIN_TIMEOUT
    depth = await queue_depth(connection, queue)
    while depth > 5 and time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        depth = await queue_depth(connection, queue)
    drained_after = time.monotonic() - started
    if depth > 5:
        raise AssertionError(f"{queue} still holds {depth} of a backlog of {backlog}")
    return {
        "service": service,
        "down_s": seconds,
        "backlog": backlog,
        "drained_after_s": round(drained_after, 1),
        "ready_after_s": round(ready_after, 1),
        "readiness": readiness,
    }
