"""The delivery worker: sends pending notifications outside any handler transaction.

Its own rows come from this process's handlers: born leased to it (`lease_owner`, `lease_until`
in the inserted row) and handed over in memory once their transaction committed (`hand_over`,
now or after a hold), so it sends them with no claim query and no claim update. A retry keeps
the row leased to it and in its memory until the next try. The periodic poll
(`NOTIFY_DELIVERY_POLL_SECONDS`, 5 s) is only the fallback for rows nobody holds: a dead
process's rows once their lease ran out, rows written without an owner. A poll that finds
nothing due reads and writes nothing else; a hand-over does not poll.

The sender is called with the notification id as idempotency key, then the outcome is ONE
update of the row (status, attempts, error), and for a final outcome in the same transaction
its event (the outbox): `sent` + `NotificationSent`, a retry later with backoff, or after the
last attempt `failed` + `NotificationFailed`. The update only matches a row still pending and
held by this worker, so a notification gets one outcome and one event. Whatever the sender
raises, its own error types or any other exception, counts as an attempt. A crash between the
send and the record leaves the row leased; once the lease runs out it is sent again: the one
window where a provider may see a message twice, which its idempotency key lets it drop.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

import structlog

from bus.documents import DocumentOutbox, pending_rows
from contracts import Envelope, new_id
from contracts.notify import NotificationFailed, NotificationSent
from kit.background import PeriodicTask
from kit.clock import Clock, utcnow
from kit.tracing import extract_context, get_tracer
from notify_service.channels import (
    OutgoingMessage,
    PermanentDeliveryError,
    Sender,
    TransientDeliveryError,
)
from notify_service.domain import retry_delay
from notify_service.store import NotifyStore, Row

log = structlog.get_logger("notify.delivery")
tracer = get_tracer("notify.delivery")


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How often and how long the worker tries."""

    retry_delays: tuple[float, ...] = (1.0, 5.0, 30.0)
    max_attempts: int = 4
    lease: timedelta = timedelta(seconds=60)
    # The fallback poll for rows nobody holds; a handler's rows are handed over (`hand_over`).
    poll_interval: float = 5.0


# A timer may fire up to the loop's clock resolution early: wake a little after the due time.
_DUE_MARGIN = 0.01


class DeliveryWorker:
    """Sends due notifications; `hand_over(rows)` after a handler committed some, `stop()` on
    shutdown.

    One send at a time per instance: on the embedded Mongo, four concurrent loops were slower
    (100 welcome emails: 11.6 s against 8.9 s) because their status transactions conflict.
    """

    def __init__(
        self,
        store: NotifyStore,
        documents: DocumentOutbox,
        senders: Mapping[str, Sender],
        policy: DeliveryPolicy,
        *,
        owner: str | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self.store = store
        self.documents = documents
        self.senders = senders
        self.policy = policy
        # Rows are leased to this id: the handlers' rows at birth, claimed and retried ones.
        self.owner = owner or f"notify-{new_id()}"
        self.clock = clock
        self._loop = PeriodicTask("notify-delivery", self.deliver_due, policy.poll_interval)
        self._timers: set[asyncio.TimerHandle] = set()
        # Rows held by this worker and due now, in the order they were handed over.
        self._ready: deque[Row] = deque()
        self._next_poll = 0.0  # time.monotonic() of the next fallback poll; 0: at start

    def start(self) -> None:
        """Deliver in the background until stopped."""
        self._loop.start()

    async def stop(self) -> None:
        """Stop; rows still in memory are left to their lease (any worker claims them after)."""
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        await self._loop.stop()

    def hand_over(self, rows: list[Row], after: float = 0.0) -> None:
        """Send these rows, leased to this worker and committed, now or in `after` seconds
        (a held row, a retry). Cheap: no database call until the worker runs."""
        if after <= 0:
            self._ready.extend(rows)
            self._loop.wake()
            return

        def ring() -> None:
            self._timers.discard(timer)
            self._ready.extend(rows)
            self._loop.wake()

        timer = asyncio.get_running_loop().call_later(after + _DUE_MARGIN, ring)
        self._timers.add(timer)

    @property
    def running(self) -> bool:
        return self._loop.running

    async def deliver_due(self) -> None:
        """One pass of the loop: send the rows handed over and due, then, on the poll's own
        clock, claim and send what nobody holds (a test runs it instead of starting the loop)."""
        while self._ready:
            await self._deliver_own(self._ready.popleft())
        # A hand-over wakes the loop too: the poll for rows nobody holds runs on its own clock.
        if time.monotonic() >= self._next_poll:
            self._next_poll = time.monotonic() + self.policy.poll_interval
            while await self.deliver_one():
                pass

    async def _deliver_own(self, row: Row) -> None:
        if row["lease_until"] <= self.clock():
            # Held up past the lease (a long backlog): another worker may have claimed it by
            # now, so sending could send twice. The poll claims it (here or elsewhere).
            log.warning("notify.lease_lapsed", notification_id=row["_id"])
            return
        await self._deliver_traced(row)

    async def deliver_one(self) -> bool:
        """Claim one due row nobody holds and send it; False when there is none."""
        row = await self.store.lease_due(self.clock(), self.policy.lease, self.owner)
        if row is None:
            return False
        await self._deliver_traced(row)
        return True

    async def _deliver_traced(self, row: Row) -> None:
        # In the trace of the event that asked for it (stored with the row), so that the send
        # and the NotificationSent it emits belong to the same journey.
        with tracer.start_as_current_span(
            f"notify deliver {row['channel']}",
            context=extract_context(row.get("trace")),
            attributes={"shop.service": "notify", "notification.id": row["_id"]},
        ):
            await self._deliver(row)

    async def _deliver(self, row: Row) -> None:
        if row.get("only_if_profile_incomplete") and await self.store.profile_complete(
            row["user_id"]
        ):
            await self.store.mark_skipped(row["_id"], self.owner, "profile completed", self.clock())
            return
        if row["channel"] == "inApp":
            # A held in-app row: releasing it into the inbox is delivering it (no event, like
            # every in-app row: the inbox is its record).
            await self.store.mark_sent(row["_id"], self.owner, self.clock(), [])
            return
        sender = self.senders.get(row["channel"])
        attempt = int(row.get("attempts", 0)) + 1
        try:
            if sender is None:
                raise PermanentDeliveryError(f"no sender for channel {row['channel']}")
            if not row.get("address"):
                raise PermanentDeliveryError(f"no {row['channel']} address")
            await sender.send(
                OutgoingMessage(row["_id"], row["address"], row["title"], row["body"])
            )
        except PermanentDeliveryError as exc:
            await self._record_failure(row, str(exc))
            return
        except TransientDeliveryError as exc:
            await self._retry_or_fail(row, attempt, str(exc))
            return
        except Exception as exc:
            # A sender that breaks in a way it did not classify (a bug, a provider SDK's own
            # error) is an attempt like any other: escaping here would leave the row leased,
            # uncounted, and sent again after every lease for ever.
            log.exception("notify.send_raised", notification_id=row["_id"], attempt=attempt)
            await self._retry_or_fail(row, attempt, f"{type(exc).__name__}: {exc}")
            return
        await self._record(row, None)

    async def _retry_or_fail(self, row: Row, attempt: int, reason: str) -> None:
        if attempt >= self.policy.max_attempts:
            await self._record_failure(row, reason)
            return
        delay = retry_delay(attempt, self.policy.retry_delays)
        next_attempt_at = self.clock() + timedelta(seconds=delay)
        lease_until = next_attempt_at + self.policy.lease
        if not await self.store.mark_retry(
            row["_id"], self.owner, reason, next_attempt_at, lease_until
        ):
            return  # no longer ours (its lease ran out and another worker claimed it)
        retry = row | {
            "attempts": attempt,
            "last_error": reason,
            "next_attempt_at": next_attempt_at,
            "lease_until": lease_until,
        }
        self.hand_over([retry], delay)
        log.info("notify.retry", notification_id=row["_id"], attempt=attempt, delay=delay)

    async def _record_failure(self, row: Row, reason: str) -> None:
        log.warning(
            "notify.failed", notification_id=row["_id"], channel=row["channel"], reason=reason
        )
        await self._record(row, reason)

    async def _record(self, row: Row, failure: str | None) -> None:
        common = {
            "notification_id": row["_id"],
            "user_id": row["user_id"],
            "channel": row["channel"],
            "template": row["type"],
            "entity_type": row.get("entity_type"),
            "entity_id": row.get("entity_id"),
        }
        event = (
            NotificationSent(**common)
            if failure is None
            else NotificationFailed(**common, reason=failure[:500])
        )
        envelope = Envelope.wrap(
            event,
            correlation_id=row.get("correlation_id") or row["_id"],
            causation_id=row.get("event_id"),
        )
        now = self.clock()
        # One write: the outcome and its event, riding in the row's own outbox (bus.documents).
        rows = pending_rows([envelope], now)
        if failure is None:
            recorded = await self.store.mark_sent(row["_id"], self.owner, now, rows)
        else:
            recorded = await self.store.mark_failed(row["_id"], self.owner, failure, now, rows)
        if recorded:
            self.documents.written(row["_id"], rows, None)
        else:
            # Its lease ran out during the send and another worker holds it now: that one
            # records the outcome (the provider may have seen it twice: the idempotency key).
            log.warning("notify.outcome_not_ours", notification_id=row["_id"])
