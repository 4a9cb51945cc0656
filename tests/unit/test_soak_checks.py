"""The soak's verdicts (bench/soak_checks.py) on synthetic series: noise passes, a leak fails."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from bench import soak_checks  # noqa: E402

pytestmark = pytest.mark.unit

MB = 2**20
DURATION = 600.0  # a 10-minute soak sampled every 10 s
TIMES = [float(t) for t in range(0, 601, 10)]


def noisy(
    level: float, spread: float, seed: int, *, slope: float = 0.0
) -> list[tuple[float, float]]:
    """`level` (+ `slope` per second) with uniform noise of ± `spread`, and a few spikes."""
    rng = random.Random(seed)
    values = [(t, level + slope * t + rng.uniform(-spread, spread)) for t in TIMES]
    for i in rng.sample(range(len(values)), 4):  # a GC that did not give memory back yet
        t, v = values[i]
        values[i] = (t, v + 4 * spread)
    return values


def test_warm_up_and_windows() -> None:
    series = [(t, t) for t in TIMES]
    steady = soak_checks.steady(series, DURATION)
    assert steady[0] == (120.0, 120.0)  # the first 20 % is warm-up
    first, last = soak_checks.windows(series, DURATION)
    assert first == [120.0, 130.0, 140.0, 150.0, 160.0, 170.0, 180.0, 190.0, 200.0, 210.0]
    assert last[0] == 510.0 and last[-1] == 600.0  # the last 20 % of the steady part


def test_a_noisy_flat_process_passes() -> None:
    # 80 MB ± 6 MB (±7.5 %: two shared cores, other people's runs) with spikes: flat.
    for seed in range(20):
        check = soak_checks.flat_memory("rss order", noisy(80 * MB, 6 * MB, seed), DURATION)
        assert check.ok, check.detail


def test_growth_during_warm_up_does_not_count() -> None:
    # Caches filling: from 50 to 90 MB in the first two minutes, flat after.
    series = [(t, (50 + 40 * min(t, 120) / 120) * MB) for t in TIMES]
    assert soak_checks.flat_memory("rss user", series, DURATION).ok


def test_a_leak_fails_even_in_noise() -> None:
    # 80 MB leaking 3 MB a minute (+20 MB, ≈ +24 %, between the windows) under the same noise.
    for seed in range(20):
        leaking = noisy(80 * MB, 6 * MB, seed, slope=3 * MB / 60)
        check = soak_checks.flat_memory("rss payment", leaking, DURATION)
        assert not check.ok, check.detail
        assert check.value is not None and check.value > soak_checks.RSS_LIMIT


def test_a_slow_steady_leak_over_the_limit_fails() -> None:
    # +12 % between the windows' middles, no noise: over the 10 % limit.
    series = [(t, 100 * MB * (1 + 0.12 * (t - 170) / 390)) for t in TIMES]
    check = soak_checks.flat_memory("rss notify", series, DURATION)
    assert not check.ok and check.value == pytest.approx(0.12, abs=0.01)


def test_too_few_samples_fail_rather_than_pass() -> None:
    check = soak_checks.flat_memory("rss gateway", [(0.0, MB), (600.0, MB)], DURATION)
    assert not check.ok and "too few samples" in check.detail


def test_a_store_may_grow_with_its_documents_only() -> None:
    documents = [(t, 1000 + 50 * t) for t in TIMES]  # 7 000 → 31 000: +340 % between windows
    with_data = [(t, (60 + 0.002 * d) * MB) for t, d in documents]  # 2 KB per document
    check = soak_checks.store_memory("rss mongo-order", with_data, documents, DURATION)
    assert check.ok, check.detail
    # The same memory with no new document: a leak.
    idle = [(t, 7000.0) for t in TIMES]
    check = soak_checks.store_memory("rss mongo-order", with_data, idle, DURATION)
    assert not check.ok, check.detail


def test_a_bounded_queue_passes_and_a_growing_one_fails() -> None:
    rng = random.Random(7)
    steady = [(t, float(rng.randint(0, 30))) for t in TIMES]
    assert soak_checks.bounded("queue order.events", steady, DURATION, margin=50, absolute=1000).ok
    building = [(t, float(rng.randint(0, 30)) + 0.5 * t) for t in TIMES]  # a consumer falls behind
    check = soak_checks.bounded("queue order.events", building, DURATION, margin=50, absolute=1000)
    assert not check.ok and "second half" in check.detail
    stuck = [(t, 5000.0) for t in TIMES]  # level, but never drained
    check = soak_checks.bounded("queue notify.events", stuck, DURATION, margin=50, absolute=1000)
    assert not check.ok and "bound" in check.detail


def test_rows_proportional_to_orders() -> None:
    orders = [(t, 2.5 * t) for t in TIMES]
    rows = [(t, 8 * o) for t, o in orders]  # 8 inbox rows per order, all along
    check = soak_checks.proportional("inbox order", rows, orders, DURATION)
    assert check.ok and check.value == pytest.approx(8)
    # Rows piling up faster and faster (something writes rows that never go): fails.
    growing = [(t, 8 * o + 0.2 * t**2) for t, o in orders]
    assert not soak_checks.proportional("inbox order", growing, orders, DURATION).ok
    # No order confirmed in the second half: says so and fails.
    stalled = [(t, min(o, 600.0)) for t, o in orders]
    check = soak_checks.proportional("inbox order", rows, stalled, DURATION)
    assert not check.ok and "no order confirmed" in check.detail
