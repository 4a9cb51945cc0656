"""Event handlers of the notify service, and its handler table.

Each handler writes its notification rows in its own transaction, keyed by (event, channel,
recipient); it never talks to a provider, so a slow or failing channel never holds up the saga.
An in-app row is delivered by being written (the inbox API is its record: no event); the
delivery worker (`delivery.py`) sends the rest, woken once the handler's transaction committed
(`wake()` for a row due now, `wake(hold)` for a held one).
`build_handlers(base_url)` at the bottom is the only place the subscriptions appear.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from bus import HandlerContext, HandlerTable
from contracts import Envelope, Event
from contracts.analytics import PromotionGranted
from contracts.inventory import StockLow, StockPartiallyReserved
from contracts.order import (
    OrderApprovalRequired,
    OrderCancelled,
    OrderConfirmed,
    OrderPlaced,
    OrderRejected,
)
from contracts.payment import PaymentFailed
from contracts.user import (
    UserDeleted,
    UserLoggedIn,
    UserProfileUpdated,
    UserRegistered,
    UserRoleChanged,
)
from notify_service.domain import Contact, Delivery, Draft, deliveries, drafts_for, profile_nudge
from notify_service.store import NotifyStore

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_NUDGE_HOLD = 10.0

# Wakes the delivery worker now (0) or in that many seconds: `DeliveryWorker.wake`.
type Wake = Callable[[float], None]


def _no_wake(after: float) -> None:
    """No worker to wake (unit tests of the handlers)."""


def _now() -> datetime:
    return datetime.now(UTC)


async def _write(
    store: NotifyStore,
    ctx: HandlerContext,
    items: list[Delivery],
    *,
    wake: Wake,
    hold: float = 0.0,
) -> None:
    envelope = ctx.envelope
    for item in items:
        held = timedelta(seconds=hold) if item.only_if_profile_incomplete else None
        created = await store.add(
            item,
            now=_now(),
            event_id=envelope.id,
            correlation_id=envelope.correlation_id,
            session=ctx.session,
            hold=held,
        )
        if created and (item.channel != "inApp" or held is not None):
            # The worker has a row to deliver, now or once the hold is over; woken before the
            # commit it would not see the row yet.
            ctx.after_commit(partial(wake, held.total_seconds() if held is not None else 0.0))


async def _recipients(store: NotifyStore, draft: Draft, ctx: HandlerContext) -> list[Contact]:
    if draft.role is not None:
        return await store.contacts_with_role(draft.role, ctx.session)
    if draft.user_id is None:
        return []
    contact = await store.contact(draft.user_id, ctx.session)
    # An unknown user still gets the in-app row; email etc. wait for the replica to know them.
    return [contact or Contact(user_id=draft.user_id)]


async def notify_about_event(
    envelope: Envelope[Event],
    ctx: HandlerContext,
    *,
    base_url: str = DEFAULT_BASE_URL,
    wake: Wake = _no_wake,
) -> None:
    """Write the notifications an event asks for, once per (event, channel, recipient)."""
    store = NotifyStore(ctx.db)
    user_id = getattr(envelope.data, "user_id", None)
    customer = await store.contact(user_id, ctx.session) if isinstance(user_id, str) else None
    for draft in drafts_for(envelope, base_url=base_url, customer=customer):
        for contact in await _recipients(store, draft, ctx):
            await _write(store, ctx, deliveries(draft, envelope.id, contact), wake=wake)


async def keep_user_replica(
    envelope: Envelope[Event],
    ctx: HandlerContext,
    *,
    nudge_hold: float = DEFAULT_NUDGE_HOLD,
    wake: Wake = _no_wake,
) -> None:
    """Keep the replica of a user's contact, role and channels; nudge an incomplete profile once."""
    store = NotifyStore(ctx.db)
    data = envelope.data
    fields: dict[str, Any]
    defaults: dict[str, Any] | None = None
    match data:
        case UserRegistered():
            fields = {"email": data.email.lower(), "role": data.role, "username": data.username}
            # A profile update handled first already knows better than "new account".
            defaults = {"phone": data.phone, "is_profile_complete": False}
        case UserProfileUpdated():
            fields = {
                "email": data.email.lower(),
                "phone": data.phone,
                "username": data.username,
                "channels": list(data.preferences.notification_channels),
                "partial_fulfillment": data.preferences.partial_fulfillment,
                "is_profile_complete": data.is_profile_complete,
                "disabled": data.disabled,
            }
        case UserRoleChanged():
            fields = {"role": data.role}
        case UserDeleted():
            fields = {"role": data.role, "deleted": True}
        case UserLoggedIn():
            fields = {}
        case _:
            return
    if fields:
        await store.upsert_user(data.user_id, fields, ctx.session, defaults=defaults)
    if isinstance(data, UserProfileUpdated | UserLoggedIn):
        flags = await store.user_flags(data.user_id, ctx.session)
        incomplete = flags.get("is_profile_complete") is False
        if isinstance(data, UserLoggedIn) and data.is_profile_complete is not None:
            # What the user service saw at the login beats a replica that may not have taken
            # the update that completed the profile yet (handled concurrently, or retried).
            incomplete = incomplete and not data.is_profile_complete
        if incomplete:
            contact = await store.contact(data.user_id, ctx.session)
            if contact is not None:
                # The nudge's dedupe scope is the user: only the first incomplete sighting sends.
                # Held a moment: the update that completes the profile may be handled after
                # this login; the worker drops the nudge if the replica is complete by then.
                nudge = deliveries(profile_nudge(data.user_id), "", contact)
                await _write(store, ctx, nudge, wake=wake, hold=nudge_hold)


NOTIFYING_EVENTS: tuple[type[Event], ...] = (
    UserRegistered,
    OrderPlaced,
    StockPartiallyReserved,
    OrderConfirmed,
    OrderRejected,
    OrderCancelled,
    PaymentFailed,
    PromotionGranted,
    OrderApprovalRequired,
    StockLow,
)
USER_EVENTS: tuple[type[Event], ...] = (
    UserRegistered,
    UserProfileUpdated,
    UserRoleChanged,
    UserDeleted,
    UserLoggedIn,
)


def build_handlers(
    base_url: str = DEFAULT_BASE_URL,
    nudge_hold: float = DEFAULT_NUDGE_HOLD,
    wake: Wake = _no_wake,
) -> HandlerTable:
    """The handler table: links point at `base_url` (the gateway); nudges wait `nudge_hold` s;
    `wake` is called after a commit that left the delivery worker something to send."""
    notify = partial(notify_about_event, base_url=base_url, wake=wake)
    replica = partial(keep_user_replica, nudge_hold=nudge_hold, wake=wake)
    table: HandlerTable = {cls: [replica] for cls in USER_EVENTS}
    for cls in NOTIFYING_EVENTS:
        # The replica first: a welcome email needs the address UserRegistered just brought.
        table.setdefault(cls, []).append(notify)
    return table


HANDLERS: HandlerTable = build_handlers()
