"""`python -m bench [--quick]`: the checkout benchmark (what `make bench` / `make bench-quick` run).

1. Start the shop as `make run` does (own ports, embedded Mongo, broker prefix, run directory).
2. Prepare through the public API: a catalogue and customers with complete profiles.
3. Measure the substrate on the same broker and Mongo server (the ceiling), and the idle load.
4. For each concurrency level: closed-loop customers place quick orders and wait for CONFIRMED;
   figures per order from the bus, Mongo's counters and the processes' CPU.
5. Full run only: the same with a 10× and 100× larger catalogue and user base (seeded straight
   into the databases by the services' own seed modules, `bench/grow.py`), and with two
   instances of the busiest service; a py-spy profile of the hottest process.
6. Table on the console, JSON under bench/results/ (latest.json too) and a PNG chart.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from pymongo import AsyncMongoClient

from bench import grow as bulk
from bench import load, prepare, probes, profiling, report, stats, substrate
from bench.system import ROOT, System, start_system

RESULTS = ROOT / "bench" / "results"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


@dataclass(frozen=True)
class Plan:
    quick: bool
    levels: tuple[int, ...]
    seconds: float
    customers: int
    products: int
    growth: tuple[int, ...]
    growth_budget: float
    growth_user_events: bool
    replicas: bool
    profile: bool
    broker_messages: int
    mongo_seconds: float
    mongo_per_service: bool
    serial_transactions: bool
    compare_mongo: bool
    fulfilment: bool = False  # run the shipping service too (its figures are reported apart)


def parse(argv: list[str] | None = None) -> Plan:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="base variant only, short levels")
    parser.add_argument(
        "--levels", default=None, help="concurrency levels (default 1,4,16,64; quick 1,4,16)"
    )
    parser.add_argument("--seconds", type=float, help="measured seconds per level")
    parser.add_argument("--customers", type=int, help="customers with complete profiles")
    parser.add_argument("--products", type=int, help="catalogue size (base)")
    parser.add_argument("--growth", default=None, help="growth factors, e.g. 10,100 ('' none)")
    parser.add_argument(
        "--growth-budget", type=float, default=300, help="seconds allowed to seed one step"
    )
    parser.add_argument(
        "--growth-user-events",
        action="store_true",
        help="seeded users emit UserRegistered + UserProfileUpdated (default: an import, none)",
    )
    parser.add_argument("--no-replicas", action="store_true", help="skip the 2-instance run")
    parser.add_argument("--profile", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument(
        "--mongo",
        choices=("shared", "per-service"),
        # Measured faster (bench/README.md): mongoeco treats overlapping write transactions of a
        # server as conflicting, so one server per service removes the cross-service conflicts.
        default=os.environ.get("BENCH_MONGO", "per-service"),
        help="one embedded Mongo for all services, or one each (SHOP_MONGO_PER_SERVICE)",
    )
    parser.add_argument(
        "--serial-transactions",
        action=argparse.BooleanOptionalAction,
        default=os.environ.get("BENCH_SERIAL_TRANSACTIONS", "1") == "1",
        help="MONGO_SERIAL_TRANSACTIONS=1 in the services (one transaction at a time per process)",
    )
    parser.add_argument(
        "--compare-mongo",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also sweep with the other Mongo layout (default: in the full run)",
    )
    parser.add_argument(
        "--fulfilment",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also run shipping (default: the checkout alone; bench.count_writes --fulfilment "
        "measures the life after CONFIRMED)",
    )
    args = parser.parse_args(argv)
    quick = bool(args.quick)
    growth = args.growth if args.growth is not None else ("" if quick else "10,100")
    return Plan(
        quick=quick,
        levels=tuple(
            int(x) for x in (args.levels or ("1,4,16" if quick else "1,4,16,64")).split(",") if x
        ),
        seconds=args.seconds or (8.0 if quick else 20.0),
        customers=args.customers or (60 if quick else 200),
        products=args.products or (20 if quick else 50),
        growth=tuple(int(x) for x in growth.split(",") if x.strip()),
        growth_budget=args.growth_budget,
        growth_user_events=args.growth_user_events,
        replicas=not quick and not args.no_replicas,
        profile=args.profile if args.profile is not None else True,
        broker_messages=2000 if quick else 6000,
        mongo_seconds=2.0 if quick else 4.0,
        mongo_per_service=args.mongo == "per-service",
        serial_transactions=args.serial_transactions,
        compare_mongo=args.compare_mongo if args.compare_mongo is not None else not quick,
        fulfilment=args.fulfilment,
    )


def say(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", flush=True)


@dataclass
class Context:
    system: System
    client: httpx.AsyncClient
    mongo: dict[str, AsyncMongoClient[Any]]  # {server (its service, or "" shared): client}
    counter: probes.EventCounter
    bindings: dict[str, list[str]]
    customers: list[prepare.Customer]
    products: list[str]
    users: int


async def snapshot(ctx: Context) -> probes.Snapshot:
    return await probes.snapshot(ctx.system, ctx.mongo)


async def idle_baseline(ctx: Context, seconds: float = 3.0) -> dict[str, Any]:
    """What the system spends per second doing nothing (relay polls, sweepers, health, the
    drivers' monitoring)."""
    before = await snapshot(ctx)
    await asyncio.sleep(seconds)
    elapsed, window = before.window_to(await snapshot(ctx))
    round_trips = {s: sum(window.round_trips(s).values()) for s in window.services()}
    return {
        "cpu_ms_per_s": {k: round(v * 1000 / elapsed, 1) for k, v in window.cpu_s.items()},
        "writes_per_s": round(sum(window.writes.values()) / elapsed, 1),
        "mongo_round_trips_per_s": (
            {k: round(v / elapsed, 1) for k, v in round_trips.items() if v}
            if window.counting
            else None
        ),
    }


async def measure_substrate(ctx: Context, plan: Plan) -> dict[str, Any]:
    size = round(ctx.counter.mean_size())
    broker = await substrate.broker_rate(
        ctx.system.amqp_url, ctx.system.prefix, messages=plan.broker_messages, size=size
    )
    mongo = await substrate.mongo_rate(ctx.system.mongo_url, seconds=plan.mongo_seconds)
    return {"broker": broker, "mongo": mongo}


async def run_level(
    ctx: Context, variant: str, concurrency: int, plan: Plan, ceiling_of: Any
) -> dict[str, Any]:
    pool = load.CustomerPool(ctx.customers)
    before = await snapshot(ctx)
    window_end: dict[str, Any] = {}

    async def close_window() -> None:
        await asyncio.sleep(plan.seconds)
        window_end["snap"] = await snapshot(ctx)

    closer = asyncio.create_task(close_window())
    placed, start = await load.run_level(ctx.client, pool, ctx.products, concurrency, plan.seconds)
    await closer
    await asyncio.sleep(0.5)  # the probe sees the last events
    after: probes.Snapshot = window_end["snap"]
    elapsed, window = before.window_to(after)
    end = after.at
    confirmed = [p for p in placed if p.final == "CONFIRMED" and p.confirmed_at is not None]
    in_window = [
        p for p in confirmed if p.confirmed_at is not None and start <= p.confirmed_at < end
    ]
    latencies = [
        p.latency_ms
        for p in confirmed
        if p.latency_ms is not None and p.created_at is not None and start <= p.created_at < end
    ]
    posts = [p.http_ms for p in placed if p.status_code and start <= p.posted_at < end]
    # Events of the orders confirmed in the window (by correlation id = order id); the checkout's
    # figures leave out the fulfilment services' events, writes and CPU (reported apart).
    journeys = [p.order_id for p in in_window if p.order_id]
    events = ctx.counter.of(journeys)
    routed = stats.deliveries(events, ctx.bindings)
    fulfilment_events = ctx.counter.of(journeys, fulfilment=True)
    orders = len(in_window)
    by_process, service_total = stats.cpu_ms_per_order(dict(window.cpu_s), orders)
    checkout = stats.part_figures(window, orders, fulfilment=False)
    fulfilment = stats.part_figures(window, orders, fulfilment=True)
    lat = stats.summarize(latencies)
    post = stats.summarize(posts)
    deliveries_per_order = stats.per_order(sum(routed.values()), orders)
    writes_per_order = checkout["writes_per_order"]
    orders_per_s = stats.rate(orders, elapsed)
    ceiling = ceiling_of(deliveries_per_order, writes_per_order)
    errors = [p.error for p in placed if p.error]
    level = {
        "variant": variant,
        "concurrency": concurrency,
        "seconds": round(elapsed, 2),
        "orders_placed": len(placed),
        "orders_confirmed_in_window": orders,
        "orders_per_s": round(orders_per_s, 3),
        "p50_ms": lat.p50,
        "p95_ms": lat.p95,
        "p99_ms": lat.p99,
        "mean_ms": lat.mean,
        "max_ms": lat.max,
        "latencies_counted": lat.count,
        "post_p50_ms": post.p50,
        "post_p95_ms": post.p95,
        "post_p99_ms": post.p99,
        "client_cycle_ms_p50": stats.percentile(
            [(p.observed_at - p.posted_at) * 1000 for p in confirmed if p.observed_at], 50
        ),
        "polls_per_order": stats.per_order(sum(p.polls for p in placed), len(placed)),
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:5],
        "events_per_order": stats.per_order(sum(events.values()), orders),
        "events_by_type_per_order": {
            k: round(v / orders, 2) for k, v in sorted(events.items()) if orders
        },
        "deliveries_per_order": deliveries_per_order,
        "deliveries_by_queue_per_order": {
            q.removeprefix(ctx.system.prefix): round(n / orders, 2)
            for q, n in sorted(routed.items())
            if orders
        },
        "writes_per_order": writes_per_order,
        "mongo_round_trips_per_order": checkout["mongo_round_trips_per_order"],
        "mongo_round_trips_by_class_per_order": {
            name: checkout[f"mongo_{name}_per_order"] for name in stats.CLASSES
        },
        "cpu_ms_per_order": checkout["cpu_ms_per_order"],
        "cpu_ms_per_order_all_in": checkout["cpu_ms_per_order_all_in"],
        "cpu_ms_per_order_by_process": by_process,
        "cpu_ms_per_order_all_processes": service_total,
        "mongo_cpu_ms_per_order": checkout["mongo_cpu_ms_per_order"],
        "by_service_per_order": stats.service_breakdown(window, orders),
        "fulfilment": {
            "services": sorted(s for s in window.services() if s in stats.FULFILMENT),
            "events_per_order": stats.per_order(sum(fulfilment_events.values()), orders),
            "deliveries_per_order": stats.per_order(
                sum(stats.deliveries(fulfilment_events, ctx.bindings).values()), orders
            ),
            **fulfilment,
        },
        "ceiling_orders_per_s": ceiling,
        "efficiency": stats.efficiency(orders_per_s, ceiling),
    }
    ctx.customers = ctx.customers  # customers keep their order counts across levels
    return level


async def grow(
    ctx: Context, users: int, products: int, budget: float, *, user_events: bool = False
) -> dict[str, Any]:
    """Seed users and products (each service's seed module, straight into its database) until
    the sizes or the time budget are reached, then wait until the replicas have caught up."""
    grown = await bulk.seed(ctx.system, users, products, budget, user_events=user_events)
    ctx.products += grown.product_ids or []
    ctx.users += grown.users
    drained = await bulk.drain(ctx.system)
    seconds = grown.user_seconds + grown.product_seconds
    return {
        "added_users": grown.users,
        "added_products": grown.products,
        "seconds": round(seconds, 1),
        "users_per_s": round(grown.users / grown.user_seconds) if grown.user_seconds else None,
        "products_per_s": (
            round(grown.products / grown.product_seconds) if grown.product_seconds else None
        ),
        "user_events": user_events,
        "drain_seconds": round(drained, 1),
        "complete": grown.users >= users and grown.products >= products and drained >= 0,
    }


async def sweep(
    ctx: Context, variant: str, plan: Plan, ceiling_of: Any, profile_dir: Path | None
) -> list[dict[str, Any]]:
    levels: list[dict[str, Any]] = []
    for index, concurrency in enumerate(plan.levels):
        profile: dict[str, Any] | None = None
        if profile_dir is not None and index == 1:
            # The hottest service of the first level, and the Mongo server(s), under load.
            profile = start_profiles(ctx, plan, profile_dir, (busiest(levels), "mongo"))
        say(f"{variant}: concurrency {concurrency} for {plan.seconds:g}s")
        level = await run_level(ctx, variant, concurrency, plan, ceiling_of)
        if profile is not None:
            level["profile"] = finish_profiles(profile)
        levels.append(level)
        say(
            f"  {level['orders_per_s']:.2f} orders/s, p99 {report.fmt(level['p99_ms'], 0)} ms, "
            f"errors {level['errors']}"
        )
        await probes.wait_idle(ctx.system, timeout=180)
    return levels


def start_profiles(
    ctx: Context, plan: Plan, directory: Path, names: tuple[str, ...]
) -> dict[str, Any]:
    """py-spy on each named process (the first of each; every Mongo server), during one level."""
    directory.mkdir(parents=True, exist_ok=True)
    processes = ctx.system.processes()
    started: dict[str, Any] = {}
    for name in names:
        chosen = processes.get(name, [])
        if name != "mongo":
            chosen = chosen[:1]
        for i, process in enumerate(chosen):
            label = name if i == 0 else f"{name}-{i + 1}"
            out = directory / f"profile-{label}.txt"
            record = profiling.start_record(process.pid, plan.seconds, out)
            if record is not None:
                started[label] = (record, out)
    return started


def finish_profiles(started: dict[str, Any]) -> dict[str, Any]:
    summaries: dict[str, Any] = {}
    for name, (record, out) in started.items():
        try:
            _, err = record.communicate(timeout=60)
        except Exception as exc:  # noqa: BLE001 - a profile is a bonus, never fails the run
            summaries[name] = {"error": repr(exc)}
            continue
        if record.returncode != 0 or not out.exists():
            summaries[name] = {"error": err.decode(errors="replace")[-300:]}
            continue
        summaries[name] = {
            "file": str(out.relative_to(ROOT)),
            **profiling.summarize(out.read_text()),
        }
    return summaries


async def run_system(
    plan: Plan,
    variant_names: list[str],
    replicas: dict[str, int],
    run_dir: Path,
    results: dict[str, Any],
    profile_dir: Path | None,
) -> list[dict[str, Any]]:
    amqp_url = os.environ.get("AMQP_URL") or DEFAULT_AMQP_URL
    instances = ", ".join(f"{k}×{v}" for k, v in replicas.items()) or "one instance each"
    say(f"starting the shop ({instances})")
    layout = "one Mongo per service" if plan.mongo_per_service else "one shared Mongo"
    serial = "serial" if plan.serial_transactions else "concurrent"
    say(f"  {layout}, {serial} transactions per process")
    system = await asyncio.to_thread(
        lambda: start_system(
            run_dir,
            amqp_url,
            replicas,
            mongo_per_service=plan.mongo_per_service,
            serial_transactions=plan.serial_transactions,
            fulfilment=plan.fulfilment,
        )
    )
    levels: list[dict[str, Any]] = []
    try:
        say(f"ready in {time.monotonic() - system.started_at:.1f}s at {system.url}")
        async with httpx.AsyncClient(
            base_url=system.url,
            timeout=60,
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=200),
        ) as client:
            mongo: dict[str, AsyncMongoClient[Any]] = {
                server: AsyncMongoClient(url) for server, url in system.mongo_urls.items()
            }
            counter = await probes.EventCounter.start(system)
            try:
                admin = await prepare.admin_headers(client)
                (products, customers), seconds = await prepare.timed(
                    prepare_base(client, admin, plan)
                )
                drained = await probes.wait_idle(system)
                say(
                    f"prepared {len(customers)} customers and {len(products)} products in "
                    f"{seconds:.1f}s (+{drained:.1f}s until every queue was empty)"
                )
                results.setdefault("preparation", []).append(
                    {
                        "variant": variant_names[0],
                        "customers": len(customers),
                        "products": len(products),
                        "seconds": round(seconds, 1),
                        "drain_seconds": round(drained, 1),
                    }
                )
                ctx = Context(
                    system,
                    client,
                    mongo,
                    counter,
                    await asyncio.to_thread(probes.service_bindings, system.prefix),
                    customers,
                    products,
                    len(customers),
                )
                # One order per customer first: replicas warm, first-order paths out of the way.
                await load.run_level(client, load.CustomerPool(customers[:8]), products, 4, 1.0)
                await probes.wait_idle(system)
                results.setdefault("idle", {})[variant_names[0]] = await idle_baseline(ctx)
                say("measuring the substrate (broker, Mongo)")
                sub = await measure_substrate(ctx, plan)
                results.setdefault("substrate", {})[variant_names[0]] = sub
                say(
                    f"  broker {sub['broker']['messages_per_s']:.0f} msg/s, "
                    f"Mongo {sub['mongo']['writes_per_s']:.0f} writes/s (transactions)"
                )

                def ceiling_of(msgs: float | None, writes: float | None) -> float | None:
                    return stats.ceiling(
                        sub["broker"]["messages_per_s"], msgs, sub["mongo"]["writes_per_s"], writes
                    )

                levels += await sweep(ctx, variant_names[0], plan, ceiling_of, profile_dir)
                for factor in plan.growth:
                    want_users = plan.customers * factor - ctx.users
                    want_products = plan.products * factor - len(ctx.products)
                    say(f"growing to {factor}× ({want_users} users, {want_products} products)")
                    grown = await grow(
                        ctx,
                        want_users,
                        want_products,
                        plan.growth_budget,
                        user_events=plan.growth_user_events,
                    )
                    grown.update(factor=factor, users=ctx.users, products=len(ctx.products))
                    results.setdefault("growth", []).append(grown)
                    say(f"  {grown}")
                    name = f"{factor}x" if grown["complete"] else f"{factor}x (partial)"
                    levels += await sweep(ctx, name, plan, ceiling_of, None)
            finally:
                await counter.close()
                for client_ in mongo.values():
                    await client_.close()
    finally:
        await asyncio.to_thread(system.stop)
    return levels


async def prepare_base(
    client: httpx.AsyncClient, admin: dict[str, str], plan: Plan
) -> tuple[list[str], list[prepare.Customer]]:
    products = await prepare.create_products(client, admin, plan.products)
    customers = await prepare.create_customers(client, plan.customers)
    return products, customers


def busiest(levels: list[dict[str, Any]]) -> str:
    """The service (not Mongo, the broker or the gateway) with the most CPU per order at the
    base variant's best level."""
    levels = [level for level in levels if level["variant"] == "base"] or levels
    if not levels:
        return "order"
    best = max(levels, key=lambda level: level["orders_per_s"])
    each = {
        k: v or 0.0
        for k, v in best["cpu_ms_per_order_by_process"].items()
        if k not in ("mongo", "rabbitmq (shared)", "smtp-sink", "gateway")
    }
    return max(each, key=lambda k: each[k])


def headline(levels: list[dict[str, Any]]) -> dict[str, Any]:
    base = [level for level in levels if level["variant"] == "base"]
    best = max(base, key=lambda level: level["orders_per_s"])
    c1 = next((level for level in base if level["concurrency"] == 1), None)
    return {
        "orders_per_s_best": best["orders_per_s"],
        "best_concurrency": best["concurrency"],
        "efficiency": best["efficiency"],
        "ceiling_orders_per_s": best["ceiling_orders_per_s"],
        "cpu_ms_per_order": best["cpu_ms_per_order"],
        "cpu_ms_per_order_with_mongo": best["cpu_ms_per_order_all_processes"],
        "cpu_ms_per_order_all_in": best["cpu_ms_per_order_all_in"],
        "mongo_round_trips_per_order": best["mongo_round_trips_per_order"],
        "p99_ms_c1": c1["p99_ms"] if c1 else None,
        "p50_ms_c1": c1["p50_ms"] if c1 else None,
        "messages_per_order": best["deliveries_per_order"],
        "events_per_order": best["events_per_order"],
        "writes_per_order": best["writes_per_order"],
        "errors": sum(level["errors"] for level in levels),
    }


async def main_async(plan: Plan) -> int:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    t0 = time.monotonic()
    run_root = ROOT / ".run" / "bench" / stamp
    profile_dir = RESULTS if plan.profile else None
    results: dict[str, Any] = {
        "started": stamp,
        "mode": "quick" if plan.quick else "full",
        "plan": asdict(plan),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_at_start": os.getloadavg(),
            "python": platform.python_version(),
        },
    }
    levels = await run_system(plan, ["base"], {}, run_root / "base", results, profile_dir)
    only_levels = Plan(**{**asdict(plan), "growth": ()})
    if plan.compare_mongo:
        other = Plan(**{**asdict(only_levels), "mongo_per_service": not plan.mongo_per_service})
        name = "mongo per service" if other.mongo_per_service else "mongo shared"
        levels += await run_system(other, [name], {}, run_root / "mongo", results, None)
    if plan.replicas:
        name = busiest(levels)
        levels += await run_system(
            only_levels, [f"{name}×2"], {name: 2}, run_root / "replicas", results, None
        )
    results["levels"] = levels
    results.update(headline(levels))
    results["seconds"] = round(time.monotonic() - t0, 1)
    results["machine"]["load_average_at_end"] = os.getloadavg()
    run, latest = report.write_json(results, RESULTS, stamp)
    png = report.chart(
        levels,
        RESULTS / "latest.png",
        f"shop checkout, {results['mode']} run {stamp} ({os.cpu_count()} shared cores)",
    )
    print()
    print(report.table(levels))
    print()
    print(report.cpu_table(levels))
    print()
    print(report.round_trips_table(levels))
    print()
    for key in (
        "orders_per_s_best",
        "efficiency",
        "cpu_ms_per_order",
        "cpu_ms_per_order_all_in",
        "p99_ms_c1",
        "messages_per_order",
        "writes_per_order",
        "mongo_round_trips_per_order",
        "errors",
    ):
        print(f"{key:>27}: {report.fmt(results[key], 3)}")
    print(
        f"\nJSON {run.relative_to(ROOT)} (and {latest.relative_to(ROOT)}), "
        f"chart {png.relative_to(ROOT)}"
    )
    print(f"took {results['seconds']:.0f}s")
    return 0


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(main_async(parse(argv)))


if __name__ == "__main__":
    sys.exit(main())
