"""The pure arithmetic of the benchmark: percentiles, per-order costs, the substrate ceiling.

No I/O here, so that `tests/unit/test_bench_stats.py` pins every figure the report prints.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation between closest ranks (numpy's
    default); None for no values."""
    if not values:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside 0..100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    if low == high:
        return float(ordered[low])
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Summary:
    count: int
    p50: float | None
    p95: float | None
    p99: float | None
    mean: float | None
    max: float | None


def summarize(values: Sequence[float]) -> Summary:
    return Summary(
        count=len(values),
        p50=percentile(values, 50),
        p95=percentile(values, 95),
        p99=percentile(values, 99),
        mean=sum(values) / len(values) if values else None,
        max=max(values) if values else None,
    )


def per_order(total: float, orders: int) -> float | None:
    """`total` spread over `orders` confirmed orders; None when nothing was confirmed."""
    return total / orders if orders > 0 else None


def rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def ceiling(
    broker_messages_per_s: float,
    messages_per_order: float | None,
    mongo_writes_per_s: float,
    writes_per_order: float | None,
) -> float | None:
    """Orders/s the substrate alone could carry: the tighter of the broker's and Mongo's limits.

    `min(broker rate / messages per order, Mongo rate / writes per order)`; a side with no
    per-order cost measured (None or 0) imposes no limit; None when neither side is known.
    """
    limits = [
        capacity / cost
        for capacity, cost in (
            (broker_messages_per_s, messages_per_order),
            (mongo_writes_per_s, writes_per_order),
        )
        if cost
    ]
    return min(limits) if limits else None


def efficiency(achieved_orders_per_s: float, ceiling_orders_per_s: float | None) -> float | None:
    """achieved / ceiling; None when the ceiling is unknown or zero."""
    if not ceiling_orders_per_s:
        return None
    return achieved_orders_per_s / ceiling_orders_per_s


def cpu_ms_per_order(
    cpu_seconds: Mapping[str, float], orders: int
) -> tuple[dict[str, float | None], float | None]:
    """({service: CPU-ms per confirmed order}, the sum over the services)."""
    each = {name: per_order(seconds * 1000, orders) for name, seconds in cpu_seconds.items()}
    return each, per_order(sum(cpu_seconds.values()) * 1000, orders)


def topic_matches(pattern: str, key: str) -> bool:
    """AMQP topic matching: `*` is exactly one word, `#` zero or more words."""

    def match(p: list[str], k: list[str]) -> bool:
        if not p:
            return not k
        head, rest = p[0], p[1:]
        if head == "#":
            return any(match(rest, k[i:]) for i in range(len(k) + 1))
        if not k:
            return False
        return (head == "*" or head == k[0]) and match(rest, k[1:])

    return match(pattern.split("."), key.split("."))


def deliveries(
    published: Mapping[str, int], bindings: Mapping[str, Iterable[str]]
) -> dict[str, int]:
    """{queue: messages routed to it} for `published` {routing key: count} over a topic
    exchange with `bindings` {queue: [binding keys]} (a queue gets one copy per message however
    many of its keys match)."""
    routed: dict[str, int] = {}
    for queue, keys in bindings.items():
        keys = list(keys)
        routed[queue] = sum(
            count for key, count in published.items() if any(topic_matches(p, key) for p in keys)
        )
    return routed


# --- Mongo round trips, the per-service breakdown and the checkout / fulfilment split ----------

UNNAMED = "-"  # commands of clients without an application name (the bench's own probes)
# Services whose work comes after checkout (a shipping service is planned): their processes,
# Mongo servers, round trips and events are reported apart, never in the checkout figures.
FULFILMENT: frozenset[str] = frozenset({"shipping"})
# Processes that are not services: the Mongo server(s), the broker, notify's SMTP sink.
SUBSTRATE_PROCESSES = ("mongo", "rabbitmq (shared)", "smtp-sink")
COMMAND_CLASSES = {
    "reads": frozenset({"find", "aggregate", "count", "distinct", "getMore"}),
    "writes": frozenset({"insert", "update", "delete", "findAndModify"}),
    "commits": frozenset({"commitTransaction", "abortTransaction"}),
}
CLASSES = (*COMMAND_CLASSES, "other")  # other: hello (handshakes, monitoring), endSessions, ping…


def command_class(command: str) -> str:
    """`reads`, `writes`, `commits` or `other` (connection and monitoring commands)."""
    for name, commands in COMMAND_CLASSES.items():
        if command in commands:
            return name
    return "other"


def counter_deltas[K](before: Mapping[K, float], after: Mapping[K, float]) -> dict[K, float]:
    """`after - before` for every key of `after` (a key new in `after` started at 0)."""
    return {key: value - before.get(key, 0) for key, value in after.items()}


@dataclass(frozen=True)
class Window:
    """What the counters moved by over one level's window.

    `mongo_cpu_s` and `writes` are by server: the service owning it, or "" for one shared server
    (whose cost cannot be split between services). `commands` is by (client application, command),
    the application being the service (`kit.mongo.connect` names the client after it);
    `counting` says whether every server counted commands (`bench.counting_mongo`)."""

    cpu_s: Mapping[str, float]
    mongo_cpu_s: Mapping[str, float]
    writes: Mapping[str, float]
    commands: Mapping[tuple[str, str], float]
    counting: bool = True

    def services(self) -> list[str]:
        names = {name for name in self.cpu_s if name not in SUBSTRATE_PROCESSES}
        names |= {server for server in (*self.mongo_cpu_s, *self.writes) if server}
        names |= {app for app, _ in self.commands if app != UNNAMED}
        return sorted(names)

    def round_trips(self, service: str) -> dict[str, float]:
        """{command: count} of `service`'s clients."""
        found: dict[str, float] = {}
        for (app, command), n in self.commands.items():
            if app == service and n:
                found[command] = found.get(command, 0) + n
        return found


def _ms(seconds: float | None, orders: int) -> float | None:
    return None if seconds is None else per_order(seconds * 1000, orders)


def _rounded(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def by_class(commands: Mapping[str, float]) -> dict[str, float]:
    """{class: count} over `commands` {command: count}, every class present."""
    totals = dict.fromkeys(CLASSES, 0.0)
    for command, n in commands.items():
        totals[command_class(command)] += n
    return totals


def service_breakdown(window: Window, orders: int) -> dict[str, dict[str, object]]:
    """Per service, per confirmed order: its CPU, its own Mongo server's CPU and writes (None
    when the server is shared), and the Mongo round trips of its clients, in total, by class and
    by command (None when the servers do not count commands)."""
    breakdown: dict[str, dict[str, object]] = {}
    for service in window.services():
        commands = window.round_trips(service)
        classes = by_class(commands)
        cpu = window.cpu_s.get(service)
        mongo_cpu = window.mongo_cpu_s.get(service)
        writes = window.writes.get(service)
        breakdown[service] = {
            "fulfilment": service in FULFILMENT,
            "cpu_ms": _rounded(_ms(cpu, orders), 1),
            "mongo_cpu_ms": _rounded(_ms(mongo_cpu, orders), 1),
            "writes": _rounded(None if writes is None else per_order(writes, orders)),
            "round_trips": (
                _rounded(per_order(sum(commands.values()), orders)) if window.counting else None
            ),
            "round_trips_by_class": (
                {k: round(v / orders, 2) for k, v in classes.items()}
                if window.counting and orders
                else None
            ),
            "round_trips_by_command": (
                {k: round(v / orders, 2) for k, v in sorted(commands.items())}
                if window.counting and orders
                else None
            ),
        }
    return breakdown


def part_figures(window: Window, orders: int, fulfilment: bool) -> dict[str, float | None]:
    """The checkout's figures per confirmed order (`fulfilment=False`: every service outside
    FULFILMENT), or fulfilment's (`True`).

    - `cpu_ms_per_order`: the services' processes;
    - `cpu_ms_per_order_all_in`: those, plus their Mongo servers, plus (checkout only) the broker
      and the SMTP sink. A shared Mongo server counts whole for the checkout (it cannot be
      split), as does the broker (shared with other people's work on this machine too);
    - `writes_per_order`: insert + update + delete documents on their servers (a shared server
      counts whole for the checkout);
    - `mongo_round_trips_per_order` (+ `_by_class`): every command their clients sent.
    """

    def mine(service: str) -> bool:
        return (service in FULFILMENT) == fulfilment

    services = [s for s in window.services() if mine(s)]
    cpu = sum(window.cpu_s.get(s, 0.0) for s in services)
    servers = [s for s in window.mongo_cpu_s if (mine(s) if s else not fulfilment)]
    mongo_cpu = sum(window.mongo_cpu_s[s] for s in servers)
    if not window.mongo_cpu_s and not fulfilment:
        mongo_cpu = window.cpu_s.get("mongo", 0.0)  # servers not told apart: all of them
    others = 0.0
    if not fulfilment:
        others = sum(window.cpu_s.get(p, 0.0) for p in SUBSTRATE_PROCESSES if p != "mongo")
    writes = sum(n for s, n in window.writes.items() if (mine(s) if s else not fulfilment))
    commands: dict[str, float] = {}
    for service in services:
        for command, n in window.round_trips(service).items():
            commands[command] = commands.get(command, 0) + n
    classes = by_class(commands)
    counted = window.counting and orders > 0
    return {
        "cpu_ms_per_order": _ms(cpu, orders),
        "mongo_cpu_ms_per_order": _ms(mongo_cpu, orders),
        "cpu_ms_per_order_all_in": _ms(cpu + mongo_cpu + others, orders),
        "writes_per_order": per_order(writes, orders),
        "mongo_round_trips_per_order": (
            per_order(sum(commands.values()), orders) if counted else None
        ),
        **{
            f"mongo_{name}_per_order": (per_order(classes[name], orders) if counted else None)
            for name in CLASSES
        },
    }
