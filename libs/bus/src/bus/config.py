"""Settings of one service's bus: names, retry schedule, relay pacing, fault tests' crash points."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"

# Crash points of the fault suite (tests/chaos, `BUS_CRASH_AT` through kit's settings): the
# consumer dies after a message's handlers committed and before it is acked; the relay after it
# claimed committed outbox rows and before it published them. The suite starts one service with
# one armed, waits for the process to die there and starts it again without: what a crash at
# that exact point leaves behind must be recovered (redelivery and the inbox; the row's lease).
CONSUMER_AFTER_COMMIT = "consumer.after_commit"
RELAY_BEFORE_PUBLISH = "relay.before_publish"
CRASH_POINTS = (CONSUMER_AFTER_COMMIT, RELAY_BEFORE_PUBLISH)


def crash() -> None:
    """Die at once, as `kill -9` would: no cleanup, no ack, no connection close."""
    os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True, slots=True)
class BusConfig:
    """How one service talks to the broker; tests shrink the delays and add a name prefix."""

    service: str
    amqp_url: str = DEFAULT_AMQP_URL
    # Prepended to every exchange and queue name, so that test runs (and environments sharing a
    # broker) never see each other's messages.
    prefix: str = ""
    # Seconds to wait before each retry. Short first (a lost write conflict clears at once), then
    # longer for a dependency that is restarting, then a minute for one that is really down.
    retry_delays: tuple[float, ...] = (1.0, 10.0, 60.0)
    # Deliveries before a message goes to the DLQ; 0 means one per delay plus the first.
    max_attempts: int = 0
    # Deliveries before a message whose handler keeps failing for a reason of the moment (a write
    # conflict, an unreachable database: `kit.transactions.is_retryable`) goes to the DLQ. Such a
    # message is not poison: it waits out an overloaded or restarting database far longer.
    retryable_attempts: int = 50
    # Broker-side backstop for consumers that die before they can ack or reroute a message.
    delivery_limit: int = 20
    prefetch: int = 16
    # Handler transactions running at once. The embedded Mongo conflicts any two overlapping
    # write transactions (measured, 300 one-insert handlers: 1.6 s at 1 or 4, 3.1 s and
    # exhausted transaction retries at 16); a real replica set takes more.
    handler_concurrency: int = 4
    # A confirm that does not come (a blocked broker) fails the publish after this long.
    publish_timeout: float = 30.0
    # A commit wakes its own relay; the poll only finds rows nobody was told about (a dead
    # process's, once their lease ran out), so it can be slow: each pass is a read and a claim.
    relay_poll_interval: float = 1.0
    relay_batch_size: int = 100
    # Confirmed rows are marked sent together, at most this long after the first of them: one
    # update for many commits. A crash in between republishes them (duplicates, absorbed).
    relay_mark_interval: float = 0.5
    lease_seconds: float = 30.0
    # How long a row stays with the relay of the process that wrote it (published right after
    # the commit); short, because if that process dies its rows wait this long for any relay.
    own_lease_seconds: float = 5.0
    # How long a dead letter may wait for a redrive (an operating assumption: the DLQ never
    # expires one); the inbox remembers events past it (`bus.inbox.inbox_retention`).
    dlq_residency_days: float = 14.0
    extra_bindings: tuple[str, ...] = ()
    # Collections whose documents carry their own pending events (`bus.documents`): the relay
    # publishes what a dead process left in them.
    document_outboxes: tuple[str, ...] = ()
    reconnect_interval: float = 2.0
    error_max_length: int = 1000
    connection_name: str = field(default="")
    # Fault tests only: the `CRASH_POINTS` where this process SIGKILLs itself (none in service).
    crash_at: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.service:
            raise ValueError("BusConfig.service must not be empty")
        if not self.retry_delays or any(d <= 0 for d in self.retry_delays):
            raise ValueError("retry_delays must be positive and not empty")
        if self.max_attempts == 0:
            object.__setattr__(self, "max_attempts", len(self.retry_delays) + 1)
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.retryable_attempts < self.max_attempts:
            object.__setattr__(self, "retryable_attempts", self.max_attempts)
        if self.dlq_residency_days <= 0:
            raise ValueError("dlq_residency_days must be positive")
        if not 0 < self.relay_mark_interval < self.own_lease_seconds:
            # Marked after the lease ran out, a row may already be claimed and sent again.
            raise ValueError("relay_mark_interval must be positive and below own_lease_seconds")
        if self.handler_concurrency < 1 or self.prefetch < 1:
            raise ValueError("handler_concurrency and prefetch must be at least 1")
        unknown = set(self.crash_at) - set(CRASH_POINTS)
        if unknown:
            raise ValueError(f"unknown crash points {sorted(unknown)}; known: {CRASH_POINTS}")
        if not self.connection_name:
            object.__setattr__(self, "connection_name", f"{self.prefix}{self.service}")

    def crashes_at(self, point: str) -> bool:
        """True when the fault suite armed `point` for this process."""
        return point in self.crash_at

    def delay_for(self, attempt: int) -> float:
        """The wait before delivery `attempt + 1` (the last delay repeats when attempts outrun)."""
        return self.retry_delays[min(attempt, len(self.retry_delays)) - 1]
