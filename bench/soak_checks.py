"""The soak's verdicts on its sampled series (pure: no I/O; tests/unit/test_soak_checks.py).

A series is a list of `(t, value)` with `t` in seconds since the load started. The run is split
into a **warm-up** (the first `warmup` fraction of its duration: caches fill, the allocator's
arenas settle, the first orders take their first-time paths) and the **steady part** after it.

- `flat_memory`: a process's RSS is flat when the median of the last window of the steady part
  (its last `window` fraction) is under `limit` (10 %) above the median of its first window.
  Medians of whole windows, not single samples: the 2 shared cores and the other engineers'
  runs make a single sample jump, and a garbage collection can take a few MB back or not. A leak
  grows every window, so it moves the median with it.
- `store_memory`: an in-memory store (the embedded Mongo servers of local mode hold every
  document in their RSS) legitimately grows with what it stores; its RSS may grow by the
  relative growth of its documents plus the same `limit`, never more (memory that grows faster
  than the data, or while the data does not, is a leak).
- `bounded`: a queue depth or a backlog is bounded when its maximum over the second half of the
  steady part is not above the maximum over the first half plus `margin`, and never above
  `absolute`: a backlog that keeps building breaks the first, a stuck consumer the second.
- `proportional`: a collection (inbox, outbox rows) grows with the work done, not faster: rows
  added per confirmed order in the second half at most `factor` × those of the first half
  (+ `margin` rows per order).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

type Series = Sequence[tuple[float, float]]

WARMUP = 0.2  # the first 20 % of the run
WINDOW = 0.2  # of the steady part: the first and the last window compared
RSS_LIMIT = 0.10  # growth allowed after warm-up
MIN_SAMPLES = 2  # per window: fewer and the check cannot say anything (it fails)


@dataclass(frozen=True)
class Check:
    name: str  # e.g. "rss order"
    ok: bool
    detail: str  # a sentence with the figures
    value: float | None = None  # the checked figure (growth ratio, depth …)
    limit: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def steady(series: Series, duration: float, warmup: float = WARMUP) -> list[tuple[float, float]]:
    """The samples after the warm-up (t ≥ warmup × duration)."""
    start = warmup * duration
    return [(t, v) for t, v in series if t >= start]


def windows(
    series: Series, duration: float, *, warmup: float = WARMUP, window: float = WINDOW
) -> tuple[list[float], list[float]]:
    """Values of the first and of the last window of the steady part."""
    start = warmup * duration
    span = (duration - start) * window
    first = [v for t, v in series if start <= t < start + span]
    last = [v for t, v in series if duration - span <= t <= duration]
    return first, last


def growth(first: Sequence[float], last: Sequence[float]) -> float | None:
    """Relative growth of the median of `last` over the median of `first`; None when a window
    holds too few samples or the first median is not positive."""
    if len(first) < MIN_SAMPLES or len(last) < MIN_SAMPLES:
        return None
    base = statistics.median(first)
    if base <= 0:
        return None
    return statistics.median(last) / base - 1


def flat_memory(
    name: str,
    series: Series,
    duration: float,
    *,
    limit: float = RSS_LIMIT,
    warmup: float = WARMUP,
    window: float = WINDOW,
) -> Check:
    first, last = windows(series, duration, warmup=warmup, window=window)
    grew = growth(first, last)
    if grew is None:
        return Check(name, False, f"too few samples ({len(first)} / {len(last)})", None, limit)
    detail = (
        f"RSS median {mb(statistics.median(first))} → {mb(statistics.median(last))} MB "
        f"({grew:+.1%}, limit {limit:+.0%})"
    )
    return Check(name, grew < limit, detail, round(grew, 4), limit)


def store_memory(
    name: str,
    rss: Series,
    documents: Series,
    duration: float,
    *,
    limit: float = RSS_LIMIT,
    warmup: float = WARMUP,
    window: float = WINDOW,
) -> Check:
    first, last = windows(rss, duration, warmup=warmup, window=window)
    grew = growth(first, last)
    d_first, d_last = windows(documents, duration, warmup=warmup, window=window)
    data = growth(d_first, d_last)
    if grew is None:
        return Check(name, False, f"too few samples ({len(first)} / {len(last)})", None, limit)
    data = max(data or 0.0, 0.0)
    allowed = limit + data
    detail = (
        f"RSS median {mb(statistics.median(first))} → {mb(statistics.median(last))} MB "
        f"({grew:+.1%}); documents {data:+.1%}; allowed {allowed:+.1%} (data + {limit:.0%})"
    )
    return Check(name, grew < allowed, detail, round(grew, 4), round(allowed, 4))


def bounded(
    name: str,
    series: Series,
    duration: float,
    *,
    margin: float,
    absolute: float,
    warmup: float = WARMUP,
) -> Check:
    values = steady(series, duration, warmup)
    if len(values) < 2 * MIN_SAMPLES:
        return Check(name, False, f"too few samples ({len(values)})", None, absolute)
    middle = (warmup * duration + duration) / 2
    first = [v for t, v in values if t < middle]
    second = [v for t, v in values if t >= middle]
    if not first or not second:
        return Check(name, False, "a half of the steady part holds no sample", None, absolute)
    high_first, high_second = max(first), max(second)
    highest = max(v for _, v in series)
    problems = []
    if high_second > high_first + margin:
        problems.append(f"max {high_second:g} in the second half > {high_first:g} + {margin:g}")
    if highest > absolute:
        problems.append(f"max {highest:g} > bound {absolute:g}")
    detail = (
        "; ".join(problems)
        or f"max {high_first:g} then {high_second:g} (margin {margin:g}, bound {absolute:g})"
    )
    return Check(name, not problems, detail, high_second, high_first + margin)


def proportional(
    name: str,
    rows: Series,
    orders: Series,
    duration: float,
    *,
    factor: float = 1.5,
    margin: float = 2.0,
    warmup: float = WARMUP,
) -> Check:
    """`rows` and `orders` are cumulative (collection size, confirmed orders so far)."""
    values = steady(rows, duration, warmup)
    done = dict(steady(orders, duration, warmup))
    points = [(t, v, done[t]) for t, v in values if t in done]
    if len(points) < 3:
        return Check(name, False, f"too few samples ({len(points)})", None, None)
    a, b, c = points[0], points[len(points) // 2], points[-1]
    first = per_order(b[1] - a[1], b[2] - a[2])
    second = per_order(c[1] - b[1], c[2] - b[2])
    if first is None or second is None:
        return Check(name, False, "no order confirmed in a half of the steady part", None, None)
    allowed = first * factor + margin
    detail = f"{first:.1f} then {second:.1f} rows per order (allowed {allowed:.1f})"
    return Check(name, second <= allowed, detail, round(second, 2), round(allowed, 2))


def per_order(rows: float, orders: float) -> float | None:
    return rows / orders if orders > 0 else None


def mb(value: float) -> str:
    return f"{value / 2**20:.0f}"
