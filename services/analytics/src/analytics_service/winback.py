"""The win-back sweep: customers inactive for N days get a promotion code, once.

Inactivity is the absence of events, so no handler can notice it: a task scans `user_facts`
periodically. Each grant is one transaction (the user's `granted_rules` guard, the promotion and
the `PromotionGranted` outbox row), so two instances sweeping at once grant a user once: the
second one's conditional update matches nothing (or conflicts and retries into that).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession

from analytics_service.domain import Grant, winback_grant
from analytics_service.store import AnalyticsStore
from bus.outbox import OutboxWriter
from contracts import Envelope
from contracts.analytics import PromotionGranted
from kit.background import PeriodicTask
from kit.transactions import run_in_transaction

log = structlog.get_logger("analytics.winback")


class WinbackSweeper:
    """Grants win-back codes every `interval` seconds; `sweep(now)` runs one pass."""

    def __init__(
        self,
        client: AsyncMongoClient[Any],
        store: AnalyticsStore,
        outbox: OutboxWriter,
        *,
        inactive_for: timedelta,
        interval: float,
        on_committed: Callable[[], None] = lambda: None,
    ) -> None:
        self.client = client
        self.store = store
        self.outbox = outbox
        self.inactive_for = inactive_for
        self.interval = interval
        self.on_committed = on_committed
        self._loop = PeriodicTask(
            "analytics-winback", lambda: self.sweep(datetime.now(UTC)), interval
        )

    def start(self) -> None:
        """Sweep in the background every `interval` seconds."""
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def sweep(self, now: datetime) -> int:
        """Grant every due win-back code; how many were granted."""
        candidates = await self.store.find(
            "user_facts",
            {
                "role": "Customer",
                "deleted": {"$ne": True},
                "last_active_at": {"$lte": now - self.inactive_for},
                "granted_rules": {"$ne": "winback"},
            },
        )
        granted = 0
        for user in candidates:
            grant = winback_grant(
                user["_id"],
                user.get("last_active_at"),
                len(user.get("confirmed_orders", [])),
                user.get("granted_rules", []),
                now,
                self.inactive_for,
            )
            if grant is not None and await self._grant(user["_id"], grant, now):
                granted += 1
        if granted:
            self.on_committed()
            log.info("analytics.winback_granted", count=granted)
        return granted

    async def _grant(self, user_id: str, grant: Grant, now: datetime) -> bool:
        event = PromotionGranted(
            user_id=user_id,
            code=grant.code,
            percent_off=grant.percent_off,
            expires_at=grant.expires_at,
            reason=grant.reason,
        )
        envelope = Envelope.wrap(event, correlation_id=user_id)

        async def body(session: AsyncClientSession) -> bool:
            claimed = await self.store.user_facts.update_one(
                {"_id": user_id, "granted_rules": {"$ne": grant.rule}},
                {"$addToSet": {"granted_rules": grant.rule}},
                session=session,
            )
            if claimed.modified_count == 0:
                return False  # another sweep got there first
            await self.store.save_promotion(user_id, grant, now, session)
            await self.outbox.add(session, envelope)
            return True

        return await run_in_transaction(self.client, body)
