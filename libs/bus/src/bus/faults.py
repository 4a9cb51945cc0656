"""Crash points for fault tests: off unless `BUS_CRASH_AT` names one.

`BUS_CRASH_AT=consumer.after_commit` SIGKILLs the process after a message's handlers committed
and before it is acked; `BUS_CRASH_AT=relay.before_publish` after the relay claimed committed
outbox rows and before it published them. The fault suite (tests/chaos) starts one service with
it, waits for the process to die there, and starts it again without it: what a crash at that
exact point leaves behind must be recovered (redelivery and the inbox; the row's lease).
"""

from __future__ import annotations

import os
import signal

CONSUMER_AFTER_COMMIT = "consumer.after_commit"
RELAY_BEFORE_PUBLISH = "relay.before_publish"
POINTS = (CONSUMER_AFTER_COMMIT, RELAY_BEFORE_PUBLISH)


def armed(point: str, environ: dict[str, str] | None = None) -> bool:
    """True when `BUS_CRASH_AT` names `point` (read once, when a consumer or relay is built)."""
    value = (os.environ if environ is None else environ).get("BUS_CRASH_AT", "")
    return point in {p.strip() for p in value.split(",")}


def crash() -> None:
    """Die at once, as `kill -9` would: no cleanup, no ack, no connection close."""
    os.kill(os.getpid(), signal.SIGKILL)
