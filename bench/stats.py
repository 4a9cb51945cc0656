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
