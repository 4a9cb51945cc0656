"""The one clock: every service reads the time through `deps.clock`, so tests can move it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

type Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (what every stored datetime is)."""
    return datetime.now(UTC)
