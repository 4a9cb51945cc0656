"""Event handlers of the notify service, and its handler table.

Each handler writes an event's notification rows with one insert_many in its own transaction,
keyed by (event, channel, recipient); it never talks to a provider, so a slow or failing channel
never holds up the saga. An in-app row is delivered by being written (the inbox API is its
record: no event, no update). The other rows are born leased to this process's delivery worker
(`delivery.py`) and handed to it once the transaction committed (`Handoff.give`: now, or after
the hold of a held row), so it sends them without a claim query or a claim update.
`build_handlers(base_url)` at the bottom is the only place the subscriptions appear.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from bus import HandlerContext, HandlerTable, deduplicated_by_state
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
from notify_service.store import NotifyStore, Row, notification_row

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_NUDGE_HOLD = 10.0


def _drop(rows: list[Row], after: float) -> None:
    """No worker to hand rows to (handler tests): they wait for any worker's poll."""


@dataclass(frozen=True, slots=True)
class Handoff:
    """Who delivers what the handlers write: this process's delivery worker.

    Rows are born leased to `owner` until `lease` after they are due, and `give(rows, after)`
    (`DeliveryWorker.hand_over`) is called once the handler's transaction committed (before,
    the worker would send a row that may yet be rolled back). Should the process die first,
    the lease runs out and any worker's poll claims them. Without an owner rows are born
    unleased, for the poll.
    """

    owner: str | None = None
    lease: timedelta = timedelta(0)
    give: Callable[[list[Row], float], None] = _drop


NO_HANDOFF = Handoff()


def _now() -> datetime:
    return datetime.now(UTC)


async def _write(
    store: NotifyStore,
    ctx: HandlerContext,
    items: list[Delivery],
    *,
    handoff: Handoff,
    hold: float | None = None,
) -> None:
    """Insert the event's rows not written yet, then hand the ones to send to the worker.

    `hold`: the rows wait that long (in-app too), then go out only if still relevant."""
    if not items:
        return
    envelope = ctx.envelope
    now = _now()
    held = timedelta(seconds=hold) if hold is not None else None
    rows = [
        notification_row(
            item,
            now=now,
            event_id=envelope.id,
            correlation_id=envelope.correlation_id,
            hold=held,
            owner=handoff.owner,
            lease=handoff.lease,
        )
        for item in items
    ]
    # Keys scoped by this event are the record of it (a repeat raises AlreadyHandled); a wider
    # scope may exist already.
    scoped_here = all(item.dedupe_key.startswith(f"{envelope.id}|") for item in items)
    written = await store.insert_new(rows, ctx.session, may_exist=not scoped_here)
    to_send = [row for row in written if row["status"] == "pending"]
    if to_send:
        ctx.after_commit(partial(handoff.give, to_send, hold or 0.0))


async def _recipients(
    store: NotifyStore, draft: Draft, ctx: HandlerContext, customer: Contact | None
) -> list[Contact]:
    if draft.role is not None:
        return await store.contacts_with_role(draft.role, ctx.session)
    if draft.user_id is None:
        return []
    if customer is not None and customer.user_id == draft.user_id:
        contact: Contact | None = customer  # read already, in this transaction
    else:
        contact = await store.contact(draft.user_id, ctx.session)
    # An unknown user still gets the in-app row; email etc. wait for the replica to know them.
    return [contact or Contact(user_id=draft.user_id)]


@deduplicated_by_state
async def notify_about_event(
    envelope: Envelope[Event],
    ctx: HandlerContext,
    *,
    base_url: str = DEFAULT_BASE_URL,
    handoff: Handoff = NO_HANDOFF,
) -> None:
    """Write the notifications an event asks for, once per (event, channel, recipient)."""
    store = NotifyStore(ctx.db)
    user_id = getattr(envelope.data, "user_id", None)
    customer = await store.contact(user_id, ctx.session) if isinstance(user_id, str) else None
    items: list[Delivery] = []
    for draft in drafts_for(envelope, base_url=base_url, customer=customer):
        for contact in await _recipients(store, draft, ctx, customer):
            items += deliveries(draft, envelope.id, contact)
    await _write(store, ctx, items, handoff=handoff)


async def keep_user_replica(
    envelope: Envelope[Event],
    ctx: HandlerContext,
    *,
    nudge_hold: float = DEFAULT_NUDGE_HOLD,
    handoff: Handoff = NO_HANDOFF,
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
                await _write(store, ctx, nudge, handoff=handoff, hold=nudge_hold)


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
    handoff: Handoff = NO_HANDOFF,
) -> HandlerTable:
    """The handler table: links point at `base_url` (the gateway); nudges wait `nudge_hold` s;
    `handoff` is the delivery worker that sends what they write."""
    notify = partial(notify_about_event, base_url=base_url, handoff=handoff)
    replica = partial(keep_user_replica, nudge_hold=nudge_hold, handoff=handoff)
    table: HandlerTable = {cls: [replica] for cls in USER_EVENTS}
    for cls in NOTIFYING_EVENTS:
        # The replica first: a welcome email needs the address UserRegistered just brought.
        table.setdefault(cls, []).append(notify)
    return table


HANDLERS: HandlerTable = build_handlers()
