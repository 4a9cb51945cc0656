"""A sampling profile of a running service with py-spy (no change to the service, no restart).

`py-spy record --format raw` writes collapsed stacks (`frame;frame;… count`); `summarize` turns
them into the functions with the most samples on top of the stack (self) and anywhere on it
(inclusive), which is what bench/README.md quotes.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def start_record(
    pid: int, seconds: float, out: Path, rate: int = 97
) -> subprocess.Popen[bytes] | None:
    """Start `py-spy record` on `pid` for `seconds` (collapsed stacks into `out`); None when
    py-spy is missing."""
    binary = py_spy()
    if binary is None:
        return None
    return subprocess.Popen(
        [
            binary,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, round(seconds))),
            "--rate",
            str(rate),
            "--format",
            "raw",
            "--nonblocking",
            "--gil",  # only the thread holding the GIL: where the CPU goes, not idle waits
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def short(frame: str) -> str:
    """`f (/x/src/kit/transactions.py:63)` → `f (kit/transactions.py)`."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/src/", "/lib/python3.13/"):
        if marker in where:
            where = where.split(marker, 1)[1]
            break
    return f"{name} ({where})" if where else name


def summarize(raw: str, top: int = 15) -> dict[str, object]:
    """Self and inclusive sample counts per function from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [short(f) for f in stack.split(";") if f and not f.startswith("process ")]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    return {
        "samples": total,
        "self": [(f, round(100 * n / total, 1)) for f, n in own.most_common(top)] if total else [],
        "inclusive": (
            [(f, round(100 * n / total, 1)) for f, n in inclusive.most_common(top * 2)]
            if total
            else []
        ),
    }
