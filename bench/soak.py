"""`python -m bench.soak [--minutes 10]`: the shop at a steady rate for minutes (`make soak`).

1. Starts the whole system as `make run` does (`bench.system.start_system`, shipping included:
   one embedded Mongo per service, serial transactions, JSON logs, as the benchmark).
2. Prepares customers and products through the public API (`bench.prepare`), enough customers
   for the run at 15 orders each (the payment service's velocity rule flags a customer's 20th
   order within an hour).
3. Picks the rate: `--rate`, else half of `orders_per_s_best` of `bench/results/latest.json`
   (`make bench`), else half of what a 20 s closed-loop level at concurrency 4 confirmed.
4. Places orders open-loop at that rate (one every 1/rate s, each polled to its end as the
   benchmark's customers do) for `--minutes`, and every `--every` seconds samples: confirmed
   orders/s and p99 placement → CONFIRMED (server clock) of the interval, each process's RSS
   (services, the runner, the SMTP sink, each embedded Mongo server), the run's queue depths,
   each service's outbox backlog (pending outbox rows + rows riding in documents) and the sizes
   of its `inbox` and `outbox` collections (and each Mongo server's document count).
5. Checks (`bench.soak_checks`) and exits 1 when one fails: RSS flat after warm-up, queue depths
   and backlogs bounded, inbox and outbox within their retention (TTL index as documented, no
   row older than it, growth proportional to the orders), no order lost or failed.
6. JSON `bench/results/soak-<stamp>.json` (and `soak-latest.json`), the chart
   `bench/results/soak-latest.png` (throughput, p99, RSS, queues and backlog over time), a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import psutil
from pymongo import AsyncMongoClient

from bench import load, prepare, probes, soak_checks, stats
from bench.report import fmt
from bench.system import BUS_SERVICES, ROOT, System, start_system
from bus.documents import OUTBOX as DOC_OUTBOX
from bus.inbox import COLLECTION as INBOX
from bus.inbox import TTL_INDEX, inbox_retention
from bus.outbox import COLLECTION as OUTBOX
from bus.outbox import PENDING, SENT_RETENTION
from kit.settings import ServiceSettings

RESULTS = ROOT / "bench" / "results"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
# Collections whose documents carry their step's outbox rows (`bus.documents`), by service.
DOCUMENT_OUTBOXES = {"order": ("orders",), "payment": ("payments",), "notify": ("notifications",)}
MAX_IN_FLIGHT = 400  # the open loop stops placing (and says so) rather than pile up without end
SAMPLES = 40  # samples per run by default (every 3-10 s)


class QueueDepths:
    """Ready messages of the run's queues through passive declares on one AMQP connection:
    `rabbitmqctl` starts an Erlang VM per call (≈ 1 s of CPU on the 2 shared cores), too dear
    to run every few seconds; it lists the names once. Ready messages only (unacknowledged ones
    are bounded by each consumer's prefetch): what piles up when a consumer falls behind."""

    def __init__(self, connection: aio_pika.abc.AbstractRobustConnection, names: list[str]):
        self.connection = connection
        self.names = names
        self.channel: aio_pika.abc.AbstractChannel | None = None

    @classmethod
    async def open(cls, system: System) -> QueueDepths:
        names = sorted(await asyncio.to_thread(probes.queue_depths, system.prefix))
        return cls(await aio_pika.connect_robust(system.amqp_url), names)

    async def read(self) -> dict[str, int]:
        depths: dict[str, int] = {}
        for name in self.names:
            if self.channel is None or self.channel.is_closed:
                self.channel = await self.connection.channel()
            try:
                queue = await self.channel.declare_queue(name, passive=True)
            except aio_pika.exceptions.ChannelClosed:  # gone: its service deleted it
                self.channel = None
                continue
            depths[name] = int(queue.declaration_result.message_count or 0)
        return depths

    async def close(self) -> None:
        await self.connection.close()


@dataclass(frozen=True)
class Plan:
    minutes: float
    every: float | None
    rate: float | None
    fraction: float
    warmup: float
    fulfilment: bool
    products: int
    queue_margin: float
    queue_bound: float
    backlog_margin: float
    backlog_bound: float
    rss_limit: float
    out: Path


def parse(argv: list[str] | None = None) -> Plan:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0, help="load duration (default 10)")
    parser.add_argument(
        "--every", type=float, help=f"seconds between samples (default: {SAMPLES} per run, 3-10 s)"
    )
    parser.add_argument("--rate", type=float, help="orders/s (default: half of bench's best)")
    parser.add_argument(
        "--fraction", type=float, default=0.5, help="of bench's best rate (default 0.5)"
    )
    parser.add_argument("--warmup", type=float, default=soak_checks.WARMUP, help="run fraction")
    parser.add_argument(
        "--fulfilment",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run shipping too, as `make run` does (default: yes)",
    )
    parser.add_argument("--products", type=int, default=20)
    parser.add_argument("--queue-margin", type=float, default=50)
    parser.add_argument("--queue-bound", type=float, default=1000)
    parser.add_argument("--backlog-margin", type=float, default=50)
    parser.add_argument("--backlog-bound", type=float, default=500)
    parser.add_argument("--rss-limit", type=float, default=soak_checks.RSS_LIMIT)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    return Plan(
        minutes=args.minutes,
        every=args.every,
        rate=args.rate,
        fraction=args.fraction,
        warmup=args.warmup,
        fulfilment=args.fulfilment,
        products=args.products,
        queue_margin=args.queue_margin,
        queue_bound=args.queue_bound,
        backlog_margin=args.backlog_margin,
        backlog_bound=args.backlog_bound,
        rss_limit=args.rss_limit,
        out=args.out,
    )


def say(text: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {text}", flush=True)


@dataclass
class Sample:
    t: float  # seconds since the load started
    placed: int  # orders placed so far
    confirmed: int  # orders seen CONFIRMED so far
    in_flight: int
    rss: dict[str, int]  # {process label: bytes}
    queues: dict[str, int]  # {queue (prefix removed): ready + unacked}
    backlog: dict[str, int]  # {service: pending outbox rows + rows riding in documents}
    inbox: dict[str, int]  # {service: rows}
    outbox: dict[str, int]  # {service: rows}
    documents: dict[str, int]  # {Mongo server label: documents over its databases}
    # {Mongo server label: what mongoeco retains besides the documents (serverStatus):
    # pending change-log entries, retained change-stream events, MVCC document versions}
    store: dict[str, dict[str, int]]
    load_average: float
    # Filled in at the end from the orders' server timestamps (a confirmation is seen late).
    orders_per_s: float | None = None
    p99_ms: float | None = None
    p50_ms: float | None = None


@dataclass
class Soak:
    system: System
    plan: Plan
    mongo: dict[str, AsyncMongoClient[Any]]  # {service: client of its server}
    queues: QueueDepths
    rate: float = 1.0  # orders/s placed
    started: float = 0.0  # wall clock when the load started
    placed: list[load.Placed] = field(default_factory=list)
    in_flight: int = 0
    skipped: int = 0  # arrivals not placed (MAX_IN_FLIGHT reached)
    samples: list[Sample] = field(default_factory=list)

    def processes(self) -> dict[str, psutil.Process]:
        """{label: process}: the runner, each service (replicas numbered), the SMTP sink, each
        Mongo server (`mongo-<service>`)."""
        found: dict[str, psutil.Process] = {"runner": psutil.Process(self.system.process.pid)}
        for name, processes in self.system.processes().items():
            if name == "mongo":
                continue
            for i, process in enumerate(processes):
                found[name if i == 0 else f"{name}-{i + 1}"] = process
        for server, process in self.system.mongo_processes().items():
            found[f"mongo-{server}" if server else "mongo"] = process
        return found


def rss_of(processes: dict[str, psutil.Process]) -> dict[str, int]:
    rss: dict[str, int] = {}
    for label, process in processes.items():
        try:
            rss[label] = int(process.memory_info().rss)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return rss


async def collection_sizes(soak: Soak) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """({service: backlog}, {service: inbox rows}, {service: outbox rows})."""
    backlog: dict[str, int] = {}
    inbox: dict[str, int] = {}
    outbox: dict[str, int] = {}
    for service, client in soak.mongo.items():
        db = client[f"{soak.system.db_prefix}{service}"]
        pending = await db[OUTBOX].count_documents({"status": PENDING})
        for collection in DOCUMENT_OUTBOXES.get(service, ()):
            pending += await db[collection].count_documents({f"{DOC_OUTBOX}.0": {"$exists": True}})
        backlog[service] = pending
        inbox[service] = await db[INBOX].estimated_document_count()
        outbox[service] = await db[OUTBOX].estimated_document_count()
    return backlog, inbox, outbox


async def documents_of(soak: Soak) -> dict[str, int]:
    """{Mongo server label: documents in the service's database} (each collection's count;
    `dbStats` would encode every document to size it)."""
    found: dict[str, int] = {}
    for service, client in soak.mongo.items():
        label = f"mongo-{service}" if soak.system.mongo_per_service else "mongo"
        db = client[f"{soak.system.db_prefix}{service}"]
        for name in await db.list_collection_names():
            found[label] = found.get(label, 0) + await db[name].estimated_document_count()
    return found


async def store_internals(soak: Soak) -> dict[str, dict[str, int]]:
    """What each embedded server keeps in memory besides the documents: the suspects of a
    growing Mongo RSS (empty for a real MongoDB)."""
    found: dict[str, dict[str, int]] = {}
    for service, client in soak.mongo.items():
        label = f"mongo-{service}" if soak.system.mongo_per_service else "mongo"
        if label in found:
            continue
        status = (await client.admin.command("serverStatus")).get("mongoeco", {})
        runtime = status.get("engineRuntime", {})
        found[label] = {
            "change_log": int(runtime.get("changeDelivery", {}).get("pendingEntries", 0)),
            "change_events": int(status.get("changeStreams", {}).get("retainedEvents", 0)),
            "mvcc_versions": int(runtime.get("mvcc", {}).get("retainedDocumentVersions", 0)),
        }
    return found


async def sample(soak: Soak, processes: dict[str, psutil.Process]) -> Sample:
    t = round(time.time() - soak.started, 2)
    rss = rss_of(processes)
    queues = await soak.queues.read()
    backlog, inbox, outbox = await collection_sizes(soak)
    documents = await documents_of(soak)
    store = await store_internals(soak)
    return Sample(
        t=t,
        placed=len(soak.placed),
        confirmed=sum(1 for p in soak.placed if p.final == "CONFIRMED"),
        in_flight=soak.in_flight,
        rss=rss,
        queues={q.removeprefix(soak.system.prefix): n for q, n in sorted(queues.items())},
        backlog=backlog,
        inbox=inbox,
        outbox=outbox,
        documents=documents,
        store=store,
        load_average=round(os.getloadavg()[0], 2),
    )


def every(plan: Plan) -> float:
    """Seconds between samples: `--every`, else SAMPLES per run, 3 to 10 s apart."""
    return plan.every or min(10.0, max(3.0, plan.minutes * 60 / SAMPLES))


def customers_needed(rate: float, seconds: float) -> int:
    """Customers enough for the run at ORDERS_PER_CUSTOMER each, with a fifth to spare."""
    return math.ceil(rate * seconds * 1.2 / load.ORDERS_PER_CUSTOMER) + 4


def bench_rate(path: Path) -> float | None:
    """`orders_per_s_best` of a benchmark run's JSON, or None."""
    try:
        best = json.loads(path.read_text()).get("orders_per_s_best")
    except (OSError, ValueError):
        return None
    return float(best) if isinstance(best, int | float) and best > 0 else None


async def drive(
    soak: Soak,
    client: httpx.AsyncClient,
    pool: load.CustomerPool,
    products: list[str],
    rate: float,
    seconds: float,
) -> None:
    """Open loop: an order every 1/rate s (on a fixed schedule, so a slow order does not slow
    the arrivals) for `seconds`, sampling every `plan.every` s; then the orders in flight end."""
    recent = load.Recent()
    tasks: set[asyncio.Task[None]] = set()
    processes = soak.processes()
    soak.started = time.time()
    t0 = time.monotonic()

    async def one(n: int) -> None:
        customer = pool.take()
        if customer is None:
            soak.placed.append(load.Placed(n, time.time(), 0, 0, error="customer pool exhausted"))
            return
        soak.in_flight += 1
        try:
            placed = await load.one_order(client, n, customer, random.choice(products), recent)
        finally:
            soak.in_flight -= 1
        soak.placed.append(placed)

    async def sampler() -> None:
        next_at = t0
        while True:
            soak.samples.append(await sample(soak, processes))
            latest = soak.samples[-1]
            say(
                f"t={latest.t:5.0f}s placed {latest.placed} confirmed {latest.confirmed} "
                f"in flight {latest.in_flight} queued {sum(latest.queues.values())} "
                f"backlog {sum(latest.backlog.values())} "
                f"RSS {sum(latest.rss.values()) / 2**20:.0f} MB load {latest.load_average}"
            )
            next_at += every(soak.plan)
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    sampling = asyncio.create_task(sampler())
    n = 0
    try:
        while (elapsed := time.monotonic() - t0) < seconds:
            due = int(elapsed * rate) + 1
            while n < due:
                n += 1
                if soak.in_flight >= MAX_IN_FLIGHT:
                    soak.skipped += 1
                    continue
                task = asyncio.create_task(one(n))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await asyncio.sleep(min(0.05, 1 / rate))
    finally:
        sampling.cancel()
        await asyncio.gather(sampling, return_exceptions=True)
    soak.samples.append(await sample(soak, processes))
    if tasks:
        say(f"waiting for the {len(tasks)} orders in flight")
        await asyncio.gather(*tasks, return_exceptions=True)


RATE_WINDOW = 30.0  # seconds: each sample's throughput and latency are over the last 30 s


def fill_rates(soak: Soak) -> None:
    """Each sample's confirmed orders/s and latency percentiles over the RATE_WINDOW before it
    (a few orders per interval would make a p99 of 5 values), from the server's timestamps
    (CONFIRMED audit time; placement → CONFIRMED)."""
    confirmed = [
        (p.confirmed_at - soak.started, p.latency_ms)
        for p in soak.placed
        if p.final == "CONFIRMED" and p.confirmed_at is not None and p.latency_ms is not None
    ]
    for s in soak.samples:
        start = max(0.0, s.t - max(RATE_WINDOW, every(soak.plan)))
        if s.t <= start:
            continue
        inside = [ms for t, ms in confirmed if start <= t < s.t]
        s.orders_per_s = round(len(inside) / (s.t - start), 3)
        s.p99_ms = rounded(stats.percentile(inside, 99))
        s.p50_ms = rounded(stats.percentile(inside, 50))


def rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def series(samples: list[Sample], pick: Any) -> list[tuple[float, float]]:
    return [(s.t, float(v)) for s in samples if (v := pick(s)) is not None]


def labels(samples: list[Sample], attribute: str) -> list[str]:
    return sorted({k for s in samples for k in getattr(s, attribute)})


async def retention_checks(soak: Soak, duration: float) -> list[soak_checks.Check]:
    """Each service's inbox and outbox: its TTL index as `libs/bus` documents it, no row older
    than its retention, rows added per confirmed order not growing."""
    checks: list[soak_checks.Check] = []
    residency = ServiceSettings().bus_dlq_residency_days
    expected = {
        INBOX: (TTL_INDEX, "processed_at", inbox_retention(residency)),
        OUTBOX: ("sent_ttl", "sent_at", SENT_RETENTION),
    }
    now = datetime.now(UTC)
    confirmed = series(soak.samples, lambda s: s.confirmed)
    for service, client in sorted(soak.mongo.items()):
        db = client[f"{soak.system.db_prefix}{service}"]
        for collection, (index_name, key, retention) in expected.items():
            name = f"{collection} {service}"
            rows = await db[collection].estimated_document_count()
            if rows == 0:
                checks.append(soak_checks.Check(name, True, "no rows (not used by the service)"))
                continue
            indexes = {i["name"]: i async for i in await db[collection].list_indexes()}
            index = indexes.get(index_name)
            seconds = int(retention.total_seconds())
            if index is None or index.get("expireAfterSeconds") != seconds:
                checks.append(
                    soak_checks.Check(
                        name, False, f"no TTL index {index_name} on {key} of {seconds}s: {index}"
                    )
                )
                continue
            oldest = await db[collection].find_one(
                {key: {"$type": "date"}}, sort=[(key, 1)], projection={key: 1}
            )
            age = (now - oldest[key].replace(tzinfo=UTC)) if oldest else timedelta(0)
            if age > retention:
                checks.append(
                    soak_checks.Check(name, False, f"a row {age} old outlived {retention}")
                )
                continue
            grew = soak_checks.proportional(
                name,
                series(soak.samples, lambda s, c=collection, v=service: getattr(s, c).get(v)),
                confirmed,
                duration,
                warmup=soak.plan.warmup,
            )
            checks.append(
                soak_checks.Check(
                    name,
                    grew.ok,
                    f"{rows} rows, TTL {retention.days} d on {key} (oldest {age.seconds} s); "
                    + grew.detail,
                    grew.value,
                    grew.limit,
                )
            )
    return checks


def memory_checks(soak: Soak, duration: float) -> list[soak_checks.Check]:
    plan = soak.plan
    checks: list[soak_checks.Check] = []
    for label in labels(soak.samples, "rss"):
        rss = series(soak.samples, lambda s, k=label: s.rss.get(k))
        if label.startswith("mongo"):
            documents = series(soak.samples, lambda s, k=label: s.documents.get(k))
            checks.append(
                soak_checks.store_memory(
                    f"rss {label}",
                    rss,
                    documents,
                    duration,
                    limit=plan.rss_limit,
                    warmup=plan.warmup,
                )
            )
        else:
            checks.append(
                soak_checks.flat_memory(
                    f"rss {label}", rss, duration, limit=plan.rss_limit, warmup=plan.warmup
                )
            )
    return checks


def bound_checks(soak: Soak, duration: float) -> list[soak_checks.Check]:
    plan = soak.plan
    checks: list[soak_checks.Check] = []
    # Each service's queue and DLQ apart (a dead letter in a soak is an error: bound 0), its
    # delay queues together.
    groups: dict[str, list[str]] = {}
    for queue in labels(soak.samples, "queues"):
        service, _, kind = queue.partition(".")
        groups.setdefault(queue if kind in ("events", "dlq") else f"{service}.retry*", []).append(
            queue
        )
    for group, queues in groups.items():
        dlq = group.endswith(".dlq")
        checks.append(
            soak_checks.bounded(
                f"queue {group}",
                series(soak.samples, lambda s, qs=queues: sum(s.queues.get(q, 0) for q in qs)),
                duration,
                margin=0 if dlq else plan.queue_margin,
                absolute=0 if dlq else plan.queue_bound,
                warmup=plan.warmup,
            )
        )
    # The open loop keeps placing: orders in flight that keep building mean the shop does not
    # keep up with the rate (margin: 10 s of arrivals; bound: a minute's).
    checks.append(
        soak_checks.bounded(
            "orders in flight",
            series(soak.samples, lambda s: s.in_flight),
            duration,
            margin=max(10.0, 10 * soak.rate),
            absolute=max(30.0, 60 * soak.rate),
            warmup=plan.warmup,
        )
    )
    for service in labels(soak.samples, "backlog"):
        checks.append(
            soak_checks.bounded(
                f"outbox backlog {service}",
                series(soak.samples, lambda s, v=service: s.backlog.get(v, 0)),
                duration,
                margin=plan.backlog_margin,
                absolute=plan.backlog_bound,
                warmup=plan.warmup,
            )
        )
    return checks


def order_checks(soak: Soak, expected: int) -> list[soak_checks.Check]:
    errors = [p.error for p in soak.placed if p.error]
    confirmed = sum(1 for p in soak.placed if p.final == "CONFIRMED")
    return [
        soak_checks.Check(
            "orders placed",
            len(soak.placed) >= expected * 0.98 and soak.skipped == 0,
            f"{len(soak.placed)} placed of {expected} scheduled ({soak.skipped} skipped: "
            f"{MAX_IN_FLIGHT} in flight)",
            len(soak.placed),
            expected,
        ),
        soak_checks.Check(
            "orders confirmed",
            not errors and confirmed == len(soak.placed),
            f"{confirmed} CONFIRMED of {len(soak.placed)}; errors {len(errors)} "
            + "; ".join(sorted({str(e) for e in errors})[:3]),
            confirmed,
            len(soak.placed),
        ),
    ]


def chart(soak: Soak, path: Path, title: str) -> Path:
    """Throughput, p99, RSS by process, queue depths and backlog over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = soak.samples
    ts = [s.t / 60 for s in samples]
    fig, axes = plt.subplots(2, 2, figsize=(13, 8), sharex=True)
    (rate, p99), (rss, queues) = axes
    rate.plot(ts, [nan(s.orders_per_s) for s in samples], marker=".", label="confirmed orders/s")
    rate.set_ylabel("confirmed orders/s")
    p99.plot(ts, [nan(s.p99_ms) for s in samples], marker=".", label="p99")
    p99.plot(ts, [nan(s.p50_ms) for s in samples], marker=".", label="p50", alpha=0.6)
    p99.set_ylabel("placement → CONFIRMED (ms)")
    for label in labels(samples, "rss"):
        rss.plot(
            ts,
            [s.rss.get(label, math.nan) / 2**20 for s in samples],
            label=label,
            linestyle="--" if label.startswith("mongo") else "-",
        )
    rss.set_ylabel("RSS (MB)")
    rss.legend(fontsize=6, ncol=2)
    queues.plot(ts, [sum(s.queues.values()) for s in samples], label="queued (all queues)")
    queues.plot(ts, [sum(s.backlog.values()) for s in samples], label="outbox backlog (all)")
    queues.plot(ts, [s.in_flight for s in samples], label="orders in flight", alpha=0.6)
    queues.set_ylabel("messages / rows / orders")
    warm = soak.plan.warmup * soak.plan.minutes
    for axis in (rate, p99, rss, queues):
        axis.axvline(warm, color="grey", linestyle="--", linewidth=0.8)
        axis.grid(True, alpha=0.3)
        axis.set_xlabel("minutes (dashed: end of warm-up)")
    for axis in (rate, p99, rss, queues):
        axis.set_ylim(bottom=0)
    rate.legend(fontsize=8)
    p99.legend(fontsize=8)
    queues.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def nan(value: float | None) -> float:
    return math.nan if value is None else value


def table(samples: list[Sample], rows_at_most: int = 20) -> str:
    """Every k-th sample (and the last), at most about `rows_at_most` rows; the JSON has all."""
    services = labels(samples, "rss")
    step = max(1, math.ceil(len(samples) / rows_at_most))
    samples = [s for i, s in enumerate(samples) if i % step == 0 or i == len(samples) - 1]
    head = ["t s", "orders/s", "p99 ms", "flight", "queued", "backlog", "inbox", "outbox"]
    head += [f"{label} MB" for label in services]
    rows = [head]
    for s in samples:
        rows.append(
            [
                f"{s.t:.0f}",
                fmt(s.orders_per_s, 2),
                fmt(s.p99_ms, 0),
                str(s.in_flight),
                str(sum(s.queues.values())),
                str(sum(s.backlog.values())),
                str(sum(s.inbox.values())),
                str(sum(s.outbox.values())),
                *(f"{s.rss[k] / 2**20:.0f}" if k in s.rss else "-" for k in services),
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


async def choose_rate(
    plan: Plan, client: httpx.AsyncClient, customers: list[prepare.Customer], products: list[str]
) -> tuple[float, str]:
    if plan.rate:
        return plan.rate, "--rate"
    best = bench_rate(RESULTS / "latest.json")
    if best is not None:
        return best * plan.fraction, f"{plan.fraction:g} × orders_per_s_best {best:g} (latest.json)"
    say("no bench/results/latest.json: measuring 20 s at concurrency 4")
    placed, start = await load.run_level(client, load.CustomerPool(customers), products, 4, 20.0)
    done = [p for p in placed if p.confirmed_at is not None and start <= p.confirmed_at]
    measured = len(done) / 20.0
    return max(0.2, measured * plan.fraction), f"{plan.fraction:g} × measured {measured:.2f}/s"


async def run(plan: Plan) -> int:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    seconds = plan.minutes * 60
    amqp_url = os.environ.get("AMQP_URL") or DEFAULT_AMQP_URL
    say("starting the shop")
    system = await asyncio.to_thread(
        lambda: start_system(
            ROOT / ".run" / "soak" / stamp,
            amqp_url,
            mongo_per_service=True,
            serial_transactions=True,
            fulfilment=plan.fulfilment,
        )
    )
    result: dict[str, Any] = {"started": stamp, "plan": {**asdict(plan), "out": str(plan.out)}}
    try:
        say(f"ready in {time.monotonic() - system.started_at:.1f}s at {system.url}")
        mongo = {
            s: AsyncMongoClient[Any](system.mongo_url_of(s))
            for s in BUS_SERVICES
            if s in system.services
        }
        soak = Soak(system, plan, mongo, await QueueDepths.open(system))
        async with httpx.AsyncClient(
            base_url=system.url,
            timeout=60,
            limits=httpx.Limits(max_connections=500, max_keepalive_connections=200),
        ) as client:
            try:
                admin = await prepare.admin_headers(client)
                products = await prepare.create_products(client, admin, plan.products)
                best = bench_rate(RESULTS / "latest.json")
                guess = plan.rate or (best * plan.fraction if best else 3.0)
                count = customers_needed(guess, seconds + 20)
                t0 = time.monotonic()
                customers = await prepare.create_customers(client, count)
                say(f"prepared {count} customers in {time.monotonic() - t0:.0f}s")
                await probes.wait_idle(system)
                rate, source = await choose_rate(plan, client, customers, products)
                await probes.wait_idle(system)
                expected = int(rate * seconds)
                pool = load.CustomerPool(customers)
                if pool.remaining() < expected:
                    more = customers_needed(rate, seconds) - len(customers)
                    customers += await prepare.create_customers(client, max(more, 1))
                    pool = load.CustomerPool(customers)
                say(f"{rate:.2f} orders/s ({source}) for {plan.minutes:g} min: {expected} orders")
                result.update(rate=round(rate, 3), rate_source=source, expected_orders=expected)
                soak.rate = rate
                await drive(soak, client, pool, products, rate, seconds)
                fill_rates(soak)
                checks = [
                    *order_checks(soak, expected),
                    *memory_checks(soak, seconds),
                    *bound_checks(soak, seconds),
                    *(await retention_checks(soak, seconds)),
                ]
            finally:
                for mongo_client in mongo.values():
                    await mongo_client.close()
                await soak.queues.close()
    finally:
        await asyncio.to_thread(system.stop)
    latencies = [p.latency_ms for p in soak.placed if p.latency_ms is not None]
    steady_from = soak.started + plan.warmup * seconds
    steady_confirmed = [
        p
        for p in soak.placed
        if p.confirmed_at is not None and steady_from <= p.confirmed_at < soak.started + seconds
    ]
    failed = [c for c in checks if not c.ok]
    result.update(
        ok=not failed,
        orders_placed=len(soak.placed),
        orders_confirmed=sum(1 for p in soak.placed if p.final == "CONFIRMED"),
        errors=sum(1 for p in soak.placed if p.error),
        skipped=soak.skipped,
        orders_per_s_steady=round(len(steady_confirmed) / ((1 - plan.warmup) * seconds), 3),
        latency_ms_steady=asdict(
            stats.summarize([p.latency_ms for p in steady_confirmed if p.latency_ms is not None])
        ),
        latency_ms=asdict(stats.summarize(latencies)),
        checks=[c.as_dict() for c in checks],
        failed=[c.name for c in failed],
        samples=[asdict(s) for s in soak.samples],
        load_average_at_end=os.getloadavg(),
    )
    plan.out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2, default=str) + "\n"
    (plan.out / f"soak-{stamp}.json").write_text(text)
    (plan.out / "soak-latest.json").write_text(text)
    png = chart(
        soak,
        plan.out / "soak-latest.png",
        f"shop soak {stamp}: {result['rate']:.2f} orders/s for {plan.minutes:g} min "
        f"({os.cpu_count()} shared cores)",
    )
    print()
    print(table(soak.samples))
    print()
    for c in checks:
        print(f"{'ok  ' if c.ok else 'FAIL'} {c.name:<28} {c.detail}")
    lat = result["latency_ms_steady"]
    print(
        f"\n{result['orders_confirmed']}/{result['orders_placed']} confirmed; after warm-up "
        f"{result['orders_per_s_steady']} orders/s, placement → CONFIRMED "
        f"p50 {fmt(lat['p50'], 0)} p99 {fmt(lat['p99'], 0)} max {fmt(lat['max'], 0)} ms"
    )
    print(f"JSON {plan.out / 'soak-latest.json'}, chart {png}")
    if failed:
        print(f"\nsoak FAILED: {', '.join(c.name for c in failed)}")
        return 1
    print("\nsoak passed")
    return 0


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(run(parse(argv)))


if __name__ == "__main__":
    sys.exit(main())
