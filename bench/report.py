"""The console table, the JSON files and the chart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def fmt(value: object, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


COLUMNS = (
    ("variant", "variant", 0),
    ("c", "concurrency", 0),
    ("orders/s", "orders_per_s", 2),
    ("p50 ms", "p50_ms", 0),
    ("p95 ms", "p95_ms", 0),
    ("p99 ms", "p99_ms", 0),
    ("POST p50", "post_p50_ms", 0),
    ("POST p99", "post_p99_ms", 0),
    ("errors", "errors", 0),
    ("msgs/o", "deliveries_per_order", 1),
    ("events/o", "events_per_order", 1),
    ("writes/o", "writes_per_order", 1),
    ("mongo RT/o", "mongo_round_trips_per_order", 1),
    ("svc CPU ms/o", "cpu_ms_per_order", 0),
    ("mongo CPU ms/o", "mongo_cpu_ms_per_order", 0),
    ("all-in CPU ms/o", "cpu_ms_per_order_all_in", 0),
    ("ceiling/s", "ceiling_orders_per_s", 1),
    ("eff", "efficiency", 2),
)


def table(levels: list[dict[str, Any]]) -> str:
    rows = [[h for h, _, _ in COLUMNS]]
    for level in levels:
        rows.append([fmt(level.get(key), d) for _, key, d in COLUMNS])
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _by_name_table(levels: list[dict[str, Any]], title: str, values: Any, digits: int) -> str:
    """One row per level, one column per name of `values(level)` ({name: figure})."""
    names = sorted({s for level in levels for s in values(level)})
    rows = [["variant", "c", *names]]
    for level in levels:
        each = values(level)
        rows.append(
            [
                level["variant"],
                str(level["concurrency"]),
                *(fmt(each.get(s), digits) for s in names),
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return title + "\n" + "\n".join(lines)


def cpu_table(levels: list[dict[str, Any]]) -> str:
    return _by_name_table(
        levels,
        "CPU-ms per confirmed order, by process",
        lambda level: level.get("cpu_ms_per_order_by_process", {}),
        0,
    )


def round_trips_table(levels: list[dict[str, Any]]) -> str:
    """Round trips per service, `reads/writes/commits/other` beside the total."""

    def cells(level: dict[str, Any]) -> dict[str, str]:
        found: dict[str, str] = {}
        for service, each in level.get("by_service_per_order", {}).items():
            classes = each.get("round_trips_by_class")
            if not each.get("round_trips") or not classes:  # none counted, or none sent
                continue
            split = "/".join(fmt(classes[c], 1) for c in ("reads", "writes", "commits", "other"))
            found[service] = f"{fmt(each['round_trips'], 1)} ({split})"
        return found

    return _by_name_table(
        levels,
        "Mongo round trips per confirmed order, by service: total (reads/writes/commits/other)",
        cells,
        1,
    )


def write_json(result: dict[str, Any], directory: Path, stamp: str) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2, sort_keys=False, default=str) + "\n"
    run = directory / f"bench-{stamp}.json"
    run.write_text(text)
    latest = directory / "latest.json"
    latest.write_text(text)
    return run, latest


def chart(levels: list[dict[str, Any]], path: Path, title: str) -> Path:
    """Throughput and p99 against concurrency, one line per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants: dict[str, list[dict[str, Any]]] = {}
    for level in levels:
        variants.setdefault(level["variant"], []).append(level)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    for name, rows in variants.items():
        rows = sorted(rows, key=lambda r: r["concurrency"])
        xs = [r["concurrency"] for r in rows]
        left.plot(xs, [r["orders_per_s"] for r in rows], marker="o", label=name)
        right.plot(
            xs,
            [r["p99_ms"] if r["p99_ms"] is not None else float("nan") for r in rows],
            marker="o",
            label=name,
        )
        ceilings = [r.get("ceiling_orders_per_s") for r in rows]
        if name == "base" and any(c is not None for c in ceilings):
            left.plot(
                xs,
                [c if c is not None else float("nan") for c in ceilings],
                linestyle="--",
                color="grey",
                label="substrate ceiling (base)",
            )
    ticks = sorted({level["concurrency"] for level in levels})
    for axis, label in ((left, "confirmed orders/s"), (right, "p99 placement→CONFIRMED (ms)")):
        axis.set_xscale("log", base=2)
        axis.set_xticks(ticks, [str(t) for t in ticks])
        axis.set_xlabel("concurrent virtual customers")
        axis.set_ylabel(label)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
    right.set_yscale("log")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
