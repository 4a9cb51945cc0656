"""The delivery worker: sends pending notifications outside any handler transaction.

It runs when told to: a handler that committed a row due now wakes it (`wake()`, from
`HandlerContext.after_commit`), a held row or a scheduled retry wakes it when it comes due
(`wake(after)`). The periodic poll is only the fallback (`NOTIFY_DELIVERY_POLL_SECONDS`, 5 s) for
rows no wake announced: written by another instance's handler, left leased by a crash, held or
retried before a restart. A pass that finds nothing due reads and writes nothing else.

It leases one due row at a time (so several instances never send the same row at once), calls
the channel's sender with the notification id as idempotency key, then records the outcome:
`sent` + `NotificationSent`, or a retry later with backoff, or after the last attempt `failed` +
`NotificationFailed`, each outcome and its event in one transaction (the outbox). Whatever the
sender raises, its own error types or any other exception, counts as an attempt. A crash between
the send and the record leaves the row leased; once the lease runs out it is sent again: the one
window where a provider may see a message twice, which its idempotency key lets it drop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession

from bus.outbox import OutboxWriter
from contracts import Envelope
from contracts.notify import NotificationFailed, NotificationSent
from kit.background import PeriodicTask
from kit.tracing import extract_context, get_tracer
from kit.transactions import run_in_transaction
from notify_service.channels import (
    OutgoingMessage,
    PermanentDeliveryError,
    Sender,
    TransientDeliveryError,
)
from notify_service.domain import retry_delay
from notify_service.store import NotifyStore

log = structlog.get_logger("notify.delivery")
tracer = get_tracer("notify.delivery")


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How often and how long the worker tries."""

    retry_delays: tuple[float, ...] = (1.0, 5.0, 30.0)
    max_attempts: int = 4
    lease: timedelta = timedelta(seconds=60)
    # The fallback poll; rows due now or later are announced by `wake`.
    poll_interval: float = 5.0


# A timer may fire up to the loop's clock resolution early: wake a little after the due time.
_DUE_MARGIN = 0.01


class DeliveryWorker:
    """Sends due notifications; `wake()` after a handler committed some, `stop()` on shutdown.

    One send at a time per instance: on the embedded Mongo, four concurrent loops were slower
    (100 welcome emails: 11.6 s against 8.9 s) because their status transactions conflict.
    """

    def __init__(
        self,
        client: AsyncMongoClient[Any],
        store: NotifyStore,
        outbox: OutboxWriter,
        senders: Mapping[str, Sender],
        policy: DeliveryPolicy,
        *,
        on_committed: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.client = client
        self.store = store
        self.outbox = outbox
        self.senders = senders
        self.policy = policy
        self.on_committed = on_committed
        self.clock = clock
        self._loop = PeriodicTask("notify-delivery", self._deliver_due, policy.poll_interval)
        self._timers: set[asyncio.TimerHandle] = set()

    def start(self) -> None:
        """Deliver in the background until stopped."""
        self._loop.start()

    async def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        await self._loop.stop()

    def wake(self, after: float = 0.0) -> None:
        """Deliver now, or in `after` seconds: a handler committed rows due then, or a retry is
        scheduled. Cheap and idempotent: waking a busy worker makes it look once more."""
        if after <= 0:
            self._loop.wake()
            return

        def ring() -> None:
            self._timers.discard(timer)
            self._loop.wake()

        timer = asyncio.get_running_loop().call_later(after + _DUE_MARGIN, ring)
        self._timers.add(timer)

    @property
    def running(self) -> bool:
        return self._loop.running

    async def _deliver_due(self) -> None:
        while await self.deliver_one():
            pass

    async def deliver_one(self) -> bool:
        """Send one due notification; False when none is due."""
        row = await self.store.lease_due(self.clock(), self.policy.lease)
        if row is None:
            return False
        # In the trace of the event that asked for it (stored with the row), so that the send
        # and the NotificationSent it emits belong to the same journey.
        with tracer.start_as_current_span(
            f"notify deliver {row['channel']}",
            context=extract_context(row.get("trace")),
            attributes={"shop.service": "notify", "notification.id": row["_id"]},
        ):
            await self._deliver(row)
        return True

    async def _deliver(self, row: dict[str, Any]) -> None:
        if row.get("only_if_profile_incomplete") and await self.store.profile_complete(
            row["user_id"]
        ):
            await self.store.mark_skipped(row["_id"], "profile completed", self.clock())
            return
        if row["channel"] == "inApp":
            # A held in-app row: releasing it into the inbox is delivering it (no event, like
            # every in-app row: the inbox is its record).
            await self.store.mark_sent(row["_id"], self.clock(), None)
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

    async def _retry_or_fail(self, row: dict[str, Any], attempt: int, reason: str) -> None:
        if attempt >= self.policy.max_attempts:
            await self._record_failure(row, reason)
            return
        delay = retry_delay(attempt, self.policy.retry_delays)
        await self.store.mark_retry(row["_id"], reason, self.clock() + timedelta(seconds=delay))
        self.wake(delay)
        log.info("notify.retry", notification_id=row["_id"], attempt=attempt, delay=delay)

    async def _record_failure(self, row: dict[str, Any], reason: str) -> None:
        log.warning(
            "notify.failed", notification_id=row["_id"], channel=row["channel"], reason=reason
        )
        await self._record(row, reason)

    async def _record(self, row: dict[str, Any], failure: str | None) -> None:
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

        async def body(session: AsyncClientSession) -> None:
            if failure is None:
                await self.store.mark_sent(row["_id"], now, session)
            else:
                await self.store.mark_failed(row["_id"], failure, now, session)
            await self.outbox.add(session, envelope)

        await run_in_transaction(self.client, body)
        self.on_committed()
