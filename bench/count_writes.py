"""Mongo write commands per confirmed order, by (database, command, collection), and Mongo round
trips per confirmed order, by service and command.

Not a test: a measurement. Starts an embedded Mongo (`bench.counting_mongo`: it counts every
command it receives, by client application = service) and the in-process shop (notify and
analytics included) on the local RabbitMQ, places a warm-up order, then `--orders` orders one by
one (each awaited CONFIRMED), waits until the writes settle, and prints the writes per order seen
by a PyMongo command listener, then the round trips per order the server counted (every command:
reads, writes, commits, getMore, and the drivers' own `hello`/`endSessions` as `other`; the same
counts `python -m bench` reports). With `--mongo-url` (a server that does not count) only the
writes. Run it with MONGO_SERIAL_TRANSACTIONS=1 (what the numbers in the services' READMEs were
measured with):

    MONGO_SERIAL_TRANSACTIONS=1 .venv/bin/python -m bench.count_writes [--orders 5] [--fulfilment]

The checkout's figures leave fulfilment out: the shop runs without the shipping service, so no
shipment is made (OrderConfirmed waits in shipping's queue). `--fulfilment` measures fulfilment
apart instead: the shop with shipping, `--orders` orders taken to CONFIRMED first (not counted),
then each one's life after it, counted: the shipment made, shipped, delivered, one unit asked
back, approved, received, refunded and restocked.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient, monitoring

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
from shop import Customer, Shop, running_shop  # noqa: E402

from bench import stats  # noqa: E402
from bench.probes import MongoCounters, mongo_counters  # noqa: E402
from bench.system import MONGO_MODULE  # noqa: E402

WRITES = {"insert", "update", "delete", "findAndModify", "commitTransaction"}
AMQP = "amqp://guest:guest@127.0.0.1:5672/"


class Writes(monitoring.CommandListener):
    """Counts write commands (and commits) by (database, command, collection)."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str, str]] = Counter()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = event.command_name
        if name not in WRITES:
            return
        target = event.command.get(name)
        collection = target if isinstance(target, str) else "-"
        self.counts[(event.database_name, name, collection)] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def settle(writes: Writes, quiet: float = 1.5, limit: float = 30.0) -> None:
    """Wait until no write was seen for `quiet` seconds (the consumers caught up)."""
    deadline = time.monotonic() + limit
    last = writes.counts.total()
    still_since = time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        now = writes.counts.total()
        if now != last:
            last, still_since = now, time.monotonic()
        elif time.monotonic() - still_since >= quiet:
            return


async def measure(mongo_url: str, orders: int, fulfilment: bool = False) -> None:
    writes = Writes()
    monitoring.register(writes)
    prefix = f"cw{secrets.token_hex(3)}"
    # Unnamed, so that its serverStatus calls are not counted for any service.
    server: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url)
    async with running_shop(
        mongo_url, AMQP, prefix, with_notify=True, with_analytics=True, with_shipping=fulfilment
    ) as shop:
        product = await shop.product(stock=1_000)
        units = 2 if fulfilment else 1  # two: one is asked back
        customers = [await shop.customer("pm_card_ok") for _ in range(3)]
        warm = await shop.order_of(customers[0], (product, units))
        await shop.wait_for(warm, "CONFIRMED")
        if fulfilment:
            await fulfil(shop, customers[0], warm, product)
        confirmed = []
        if fulfilment:  # the checkouts first, not counted
            for n in range(orders):
                order_id = await shop.order_of(customers[n % len(customers)], (product, units))
                await shop.wait_for(order_id, "CONFIRMED")
                confirmed.append((customers[n % len(customers)], order_id))
        await settle(writes)
        writes.counts.clear()
        before = await mongo_counters({"": server})
        for n in range(orders):
            if fulfilment:
                await fulfil(shop, *confirmed[n], product)
            else:
                order_id = await shop.order_of(customers[n % len(customers)], (product, units))
                await shop.wait_for(order_id, "CONFIRMED")
        await settle(writes)
        after = await mongo_counters({"": server})
        counts = Counter(writes.counts)
    await server.close()
    report(counts, before, after, orders, "fulfilled" if fulfilment else "confirmed")


async def fulfil(shop: Shop, customer: Customer, order_id: str, product: str) -> None:
    """An order's life after CONFIRMED: shipped, delivered, one unit returned and refunded."""
    shipment = await shop.shipment_of(order_id)
    for action in ("ship", "deliver"):
        response = await shop.shipment(shipment["shipmentId"], action)
        assert response.status_code == 200, response.text
    await shop.wait_fulfilment(order_id, "DELIVERED")
    asked = await shop.ask_return(customer, order_id, (product, 1))
    assert asked.status_code == 201, asked.text
    return_id = asked.json()["returnId"]
    for action in ("approve", "receive"):
        response = await shop.return_step(return_id, action)
        assert response.status_code == 200, response.text
    await shop.wait_return(order_id, return_id, "REFUNDED")


def report(
    counts: Counter[tuple[str, str, str]],
    before: MongoCounters,
    after: MongoCounters,
    orders: int,
    what: str,
) -> None:
    per_service: Counter[str] = Counter()
    print(f"writes per {what} order ({orders} orders)")
    print(f"{'database':<12} {'command':<18} {'collection':<18} {'per order':>9}")
    for (db, command, collection), n in sorted(counts.items()):
        service = db.rsplit("_", 1)[-1]  # <db prefix>_<service>; commits go to `admin`
        print(f"{service:<12} {command:<18} {collection:<18} {n / orders:>9.1f}")
        if command != "commitTransaction":
            per_service[service] += n
    print("write commands (commits excluded) per order:")
    for service, n in sorted(per_service.items()):
        print(f"  {service:<12} {n / orders:.1f}")
    print()
    print(round_trips_report(before, after, orders, what))


def round_trips_report(
    before: MongoCounters, after: MongoCounters, orders: int, what: str = "confirmed"
) -> str:
    """Round trips per order by service and command, then by service and class."""
    if not (before.counting and after.counting):
        return "round trips: not counted (the server is not bench.counting_mongo)"
    window = stats.Window({}, {}, {}, stats.counter_deltas(before.commands, after.commands))
    lines = [f"Mongo round trips per {what} order ({orders} orders), every command sent"]
    lines.append(f"{'service':<12} {'command':<18} {'class':<8} {'per order':>9}")
    for service in window.services():
        for command, n in sorted(window.round_trips(service).items()):
            lines.append(
                f"{service:<12} {command:<18} {stats.command_class(command):<8} {n / orders:>9.1f}"
            )
    lines.append("round trips per order: total (reads / writes / commits / other)")
    total = dict.fromkeys(stats.CLASSES, 0.0)
    for service in window.services():
        classes = stats.by_class(window.round_trips(service))
        for name, n in classes.items():
            total[name] += n
        lines.append(f"  {service:<12} {_classes(classes, orders)}")
    lines.append(f"  {'all':<12} {_classes(total, orders)}")
    return "\n".join(lines)


def _classes(classes: dict[str, float], orders: int) -> str:
    split = " / ".join(f"{classes[name] / orders:.1f}" for name in stats.CLASSES)
    return f"{sum(classes.values()) / orders:>6.1f}  ({split})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=5)
    parser.add_argument("--mongo-url", help="use this server instead of an embedded one")
    parser.add_argument(
        "--fulfilment", action="store_true", help="measure the life after CONFIRMED instead"
    )
    args = parser.parse_args()
    if args.mongo_url:
        asyncio.run(measure(args.mongo_url, args.orders, args.fulfilment))
        return
    server = subprocess.Popen(
        [sys.executable, "-m", MONGO_MODULE, "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line.startswith("READY "):
            raise SystemExit(f"embedded Mongo did not start: {line!r}")
        asyncio.run(measure(line.split()[1], args.orders, args.fulfilment))
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
