"""What the benchmark reads off the running system besides HTTP: events on the bus, how the
broker routes them, Mongo's operation counters, and the CPU time of each process.

- Events: a probe queue of our own bound to `#` on the run's exchange counts every event by type
  and correlation id (each one went through an outbox and a relay, except the gateway's
  AccessDenied). Per order, only the events of the orders confirmed in the window count (the
  saga keeps the order id as correlation id), so orders in flight at the window's edges do not
  skew the figure.
- Deliveries: each event type times the service queues whose bindings match its routing key
  (`rabbitmqctl list_bindings`; the management plugin is not needed), i.e. the messages the
  broker stored, delivered and had acked for the services.
- Mongo writes: `serverStatus().opcounters` of the run's own embedded server(s) (insert +
  update + delete; mongoeco counts each write command's documents, inside transactions too),
  kept by server: with one server per service, that service's writes.
- Mongo round trips: the `commandCounts` that `bench.counting_mongo` adds to `serverStatus`
  (every command received, by the client's application name = the service, and command).
- CPU: user + system seconds of each service process (psutil), replicas summed per service; the
  Mongo servers summed as `mongo`, and apart by server (the service owning it, found by the port
  it listens on).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import psutil
from aio_pika.abc import AbstractIncomingMessage
from pymongo import AsyncMongoClient

from bench.stats import FULFILMENT, Window, counter_deltas
from bench.system import BUS_SERVICES, System

WRITE_OPS = ("insert", "update", "delete")


@dataclass
class EventCounter:
    """Counts the run's events by routing key, with the time each arrived."""

    connection: aio_pika.abc.AbstractRobustConnection
    arrivals: list[tuple[float, str, int]] = field(default_factory=list)
    # {correlation id: {(source service, routing key): count}}
    by_correlation: dict[str, Counter[tuple[str, str]]] = field(default_factory=dict)

    @classmethod
    async def start(cls, system: System) -> EventCounter:
        connection = await aio_pika.connect_robust(system.amqp_url)
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=500)
        exchange = await channel.declare_exchange(
            f"{system.prefix}shop.events", aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, routing_key="#")
        counter = cls(connection)

        async def record(message: AbstractIncomingMessage) -> None:
            key = message.routing_key or ""
            counter.arrivals.append((time.time(), key, len(message.body)))
            try:
                envelope = json.loads(message.body)
                correlation = str(envelope.get("correlationId", ""))
                source = str(envelope.get("source", ""))
            except (ValueError, AttributeError):
                correlation = source = ""
            counter.by_correlation.setdefault(correlation, Counter())[(source, key)] += 1
            await message.ack()

        await queue.consume(record)
        return counter

    def between(self, start: float, end: float) -> Counter[str]:
        return Counter(key for at, key, _ in self.arrivals if start <= at < end)

    def of(self, correlation_ids: list[str], *, fulfilment: bool = False) -> Counter[str]:
        """Events by routing key of these journeys (order ids): those the checkout's services
        published, or (`fulfilment=True`) those of the fulfilment services (stats.FULFILMENT)."""
        total: Counter[str] = Counter()
        for correlation in correlation_ids:
            for (source, key), n in self.by_correlation.get(correlation, Counter()).items():
                if (source in FULFILMENT) == fulfilment:
                    total[key] += n
        return total

    def mean_size(self) -> float:
        sizes = [size for _, _, size in self.arrivals]
        return sum(sizes) / len(sizes) if sizes else 1000.0

    async def close(self) -> None:
        await self.connection.close()


def rabbitmqctl(*args: str) -> Any:
    out = subprocess.run(
        ["rabbitmqctl", "-q", *args, "--formatter", "json"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return json.loads(out)


def service_bindings(prefix: str) -> dict[str, list[str]]:
    """{service queue: binding keys} on the run's topic exchange."""
    exchange = f"{prefix}shop.events"
    found: dict[str, list[str]] = {}
    for row in rabbitmqctl("list_bindings", "source_name", "destination_name", "routing_key"):
        if row["source_name"] == exchange and row["destination_name"].startswith(prefix):
            found.setdefault(row["destination_name"], []).append(row["routing_key"])
    return found


def queue_depths(prefix: str) -> dict[str, int]:
    """{queue: ready + unacknowledged messages} of the run's queues."""
    rows = rabbitmqctl("list_queues", "name", "messages")
    return {r["name"]: int(r["messages"]) for r in rows if r["name"].startswith(prefix)}


async def wait_idle(system: System, timeout: float = 300, quiet: float = 1.0) -> float:
    """Wait until every service queue of the run stays empty for `quiet` seconds; the wait, or
    -1 when the queues were still busy after `timeout` (the run goes on and says so)."""
    # A service not started (shipping, without --fulfilment) leaves its queue filling up.
    names = [f"{system.prefix}{s}.events" for s in BUS_SERVICES if s in system.services]
    t0 = time.monotonic()
    empty_since: float | None = None
    while time.monotonic() - t0 < timeout:
        depths = await asyncio.to_thread(queue_depths, system.prefix)
        if all(depths.get(n, 0) == 0 for n in names):
            empty_since = empty_since or time.monotonic()
            if time.monotonic() - empty_since >= quiet:
                return time.monotonic() - t0
        else:
            empty_since = None
        await asyncio.sleep(0.5)
    print(f"[bench] queues still busy after {timeout:g}s: {depths}", flush=True)
    return -1.0


@dataclass(frozen=True)
class MongoCounters:
    """The servers' counters at one moment."""

    writes: dict[str, int]  # {server: insert + update + delete}, server = its service or ""
    commands: dict[tuple[str, str], int]  # {(application, command): n}, summed over servers
    counting: bool  # every server counts commands (bench.counting_mongo)


async def mongo_counters(clients: dict[str, AsyncMongoClient[Any]]) -> MongoCounters:
    """`serverStatus` of each of the run's servers ({service or "": client})."""
    writes: dict[str, int] = {}
    commands: Counter[tuple[str, str]] = Counter()
    counting = True
    for server, client in clients.items():
        status = await client.admin.command("serverStatus")
        counters = status.get("opcounters", {})
        writes[server] = sum(int(counters.get(op, 0)) for op in WRITE_OPS)
        if "commandCounts" not in status:
            counting = False  # e.g. a real MongoDB: no round trips rather than a partial count
        for row in status.get("commandCounts", []):
            commands[(str(row["app"]), str(row["command"]))] += int(row["n"])
    return MongoCounters(writes, dict(commands), counting)


def mongo_cpu_seconds(system: System) -> dict[str, float]:
    """{server (its service, or "" when shared): user + system CPU seconds so far}."""
    totals: dict[str, float] = {}
    for server, process in system.mongo_processes().items():
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        totals[server] = times.user + times.system
    return totals


def cpu_seconds(system: System) -> dict[str, float]:
    """{service or mongo: user + system CPU seconds so far}, replicas summed."""
    totals: dict[str, float] = {}
    for name, processes in system.processes().items():
        for process in processes:
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            totals[name] = totals.get(name, 0.0) + times.user + times.system
    broker = broker_process()
    if broker is not None:
        times = broker.cpu_times()
        totals["rabbitmq (shared)"] = times.user + times.system
    return totals


def broker_process() -> psutil.Process | None:
    for process in psutil.process_iter(["name"]):
        if process.info["name"] == "beam.smp":
            return process
    return None


def self_cpu_seconds() -> float:
    times = psutil.Process().cpu_times()
    return float(times.user + times.system)


@dataclass(frozen=True)
class Snapshot:
    """Every counter the figures of a window come from, at one moment."""

    at: float
    cpu: dict[str, float]
    mongo_cpu: dict[str, float]
    mongo: MongoCounters

    def window_to(self, after: Snapshot) -> tuple[float, Window]:
        """(seconds, what the counters moved by) from this snapshot to `after`."""
        return after.at - self.at, Window(
            cpu_s=counter_deltas(self.cpu, after.cpu),
            mongo_cpu_s=counter_deltas(self.mongo_cpu, after.mongo_cpu),
            writes=counter_deltas(self.mongo.writes, after.mongo.writes),
            commands=counter_deltas(self.mongo.commands, after.mongo.commands),
            counting=self.mongo.counting and after.mongo.counting,
        )


async def snapshot(system: System, clients: dict[str, AsyncMongoClient[Any]]) -> Snapshot:
    cpu = cpu_seconds(system)
    mongo_cpu = mongo_cpu_seconds(system)
    if len(mongo_cpu) == len(system.processes().get("mongo", [])):
        # One reading for both, so that `mongo` is exactly the sum of the servers.
        cpu["mongo"] = sum(mongo_cpu.values())
    else:
        mongo_cpu = {}  # servers not all told apart: `mongo` whole, never a part of them
    return Snapshot(time.time(), cpu, mongo_cpu, await mongo_counters(clients))
