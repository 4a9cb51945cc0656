"""What the notify service does: its use cases, each `async def x(deps, …)`.

An event becomes notification rows, one per (event, channel, recipient), written with one
insert_many in the handler's transaction (`record_notifications`); the users replica follows the
user service's events and nudges an incomplete profile once (`update_user_replica`). Neither
talks to a provider: in-app rows are delivered by being written (the inbox is their record), the
other rows are born leased to this process's delivery worker (`deps.worker`) and returned as a
`Handover`, which the handler gives the worker once its transaction committed. The worker
(`delivery.py`) sends them and records each outcome with its event in one update. The inbox API
reads a user's rows (`inbox`) and sets a read receipt (`mark_read`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from contracts import Envelope, Event
from contracts.user import (
    UserDeleted,
    UserLoggedIn,
    UserProfileUpdated,
    UserRegistered,
    UserRoleChanged,
)
from kit.auth import Principal, ensure_owner
from kit.errors import Problem, forbidden, not_found
from kit.models import time_cursor, time_position
from kit.mongo import Doc, Session
from notify_service.deps import Deps
from notify_service.domain import Contact, Delivery, Draft, deliveries, drafts_for, profile_nudge
from notify_service.store import NotifyStore, Row, notification_row


@dataclass(frozen=True, slots=True)
class Handover:
    """Rows a command wrote for the delivery worker: given to it once the transaction committed
    (before, it would send a row that may yet be rolled back), `after` seconds later (a held
    row). Should the process die first, their lease runs out and any worker's poll claims them."""

    rows: list[Row] = field(default_factory=list)
    after: float = 0.0


NOTHING = Handover()


# ── notifications an event causes ──────────────────────────────────────────────────────────


async def _write(
    deps: Deps,
    envelope: Envelope[Any],
    session: Session,
    items: list[Delivery],
    *,
    hold: float | None = None,
) -> Handover:
    """Insert the event's rows not written yet; the ones the worker is to send.

    `hold`: the rows wait that long (in-app too), then go out only if still relevant."""
    if not items:
        return NOTHING
    now = deps.clock()
    held = timedelta(seconds=hold) if hold is not None else None
    worker = deps.worker
    rows = [
        notification_row(
            item,
            now=now,
            event_id=envelope.id,
            correlation_id=envelope.correlation_id,
            hold=held,
            owner=worker.owner,
            lease=worker.policy.lease,
        )
        for item in items
    ]
    # Keys scoped by this event are the record of it (a repeat raises AlreadyHandled); a wider
    # scope may exist already.
    scoped_here = all(item.dedupe_key.startswith(f"{envelope.id}|") for item in items)
    written = await deps.store.insert_new(rows, session, may_exist=not scoped_here)
    return Handover([row for row in written if row["status"] == "pending"], hold or 0.0)


async def _recipients(
    store: NotifyStore, draft: Draft, session: Session, customer: Contact | None
) -> list[Contact]:
    if draft.role is not None:
        return await store.contacts_with_role(draft.role, session)
    if draft.user_id is None:
        return []
    if customer is not None and customer.user_id == draft.user_id:
        contact: Contact | None = customer  # read already, in this transaction
    else:
        contact = await store.contact(draft.user_id, session)
    # An unknown user still gets the in-app row; email etc. wait for the replica to know them.
    return [contact or Contact(user_id=draft.user_id)]


async def record_notifications(deps: Deps, envelope: Envelope[Event], session: Session) -> Handover:
    """Write the notifications an event asks for, once per (event, channel, recipient).

    The rows are the record of the event: a repeat's insert hits their keys and raises
    `bus.AlreadyHandled` (its handler is deduplicated by that state, no inbox row)."""
    store = deps.store
    user_id = getattr(envelope.data, "user_id", None)
    customer = await store.contact(user_id, session) if isinstance(user_id, str) else None
    base_url = deps.settings.public_base_url
    items: list[Delivery] = []
    for draft in drafts_for(envelope, base_url=base_url, customer=customer):
        for contact in await _recipients(store, draft, session, customer):
            items += deliveries(draft, envelope.id, contact)
    return await _write(deps, envelope, session, items)


# ── the users replica ──────────────────────────────────────────────────────────────────────


type UserEvent = UserRegistered | UserProfileUpdated | UserRoleChanged | UserDeleted | UserLoggedIn


def _replica_change(data: UserEvent) -> tuple[Doc, Doc | None]:
    """The replica fields a user event sets, and those set only on a user seen first."""
    match data:
        case UserRegistered():
            fields = {"email": data.email.lower(), "role": data.role, "username": data.username}
            # A profile update handled first already knows better than "new account".
            return fields, {"phone": data.phone, "is_profile_complete": False}
        case UserProfileUpdated():
            return {
                "email": data.email.lower(),
                "phone": data.phone,
                "username": data.username,
                "channels": list(data.preferences.notification_channels),
                "partial_fulfillment": data.preferences.partial_fulfillment,
                "is_profile_complete": data.is_profile_complete,
                "disabled": data.disabled,
            }, None
        case UserRoleChanged():
            return {"role": data.role}, None
        case UserDeleted():
            return {"role": data.role, "deleted": True}, None
        case UserLoggedIn():
            return {}, None


async def update_user_replica(deps: Deps, envelope: Envelope[Event], session: Session) -> Handover:
    """Keep the replica of a user's contact, role and channels; nudge an incomplete profile once."""
    store = deps.store
    data = envelope.data
    if not isinstance(
        data, UserRegistered | UserProfileUpdated | UserRoleChanged | UserDeleted | UserLoggedIn
    ):
        return NOTHING
    fields, defaults = _replica_change(data)
    if fields:
        await store.upsert_user(data.user_id, fields, session, defaults=defaults)
    if not isinstance(data, UserProfileUpdated | UserLoggedIn):
        return NOTHING
    flags = await store.user_flags(data.user_id, session)
    incomplete = flags.get("is_profile_complete") is False
    if isinstance(data, UserLoggedIn) and data.is_profile_complete is not None:
        # What the user service saw at the login beats a replica that may not have taken the
        # update that completed the profile yet (handled concurrently, or retried).
        incomplete = incomplete and not data.is_profile_complete
    contact = await store.contact(data.user_id, session) if incomplete else None
    if contact is None:
        return NOTHING
    # The nudge's dedupe scope is the user: only the first incomplete sighting sends. Held a
    # moment: the update that completes the profile may be handled after this login; the
    # worker drops the nudge if the replica is complete by then.
    nudge = deliveries(profile_nudge(data.user_id), "", contact)
    return await _write(deps, envelope, session, nudge, hold=deps.settings.nudge_hold_seconds)


# ── the inbox API ──────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class InboxPage:
    """A page of a user's inbox (stored rows, newest first) and the cursor of the next one."""

    rows: list[Doc]
    next_cursor: str | None


def notification_not_found() -> Problem:
    return not_found("NOTIFICATION_NOT_FOUND", "No such notification.")


async def inbox(
    deps: Deps, caller: Principal, *, user_id: str | None, limit: int, cursor: str | None
) -> InboxPage:
    """The caller's notifications on every channel, newest first; an Admin may name another
    user (anyone else naming one is 403 `FORBIDDEN`)."""
    owner = user_id or caller.user_id
    if owner != caller.user_id and caller.role != "Admin":
        raise forbidden()
    rows = await deps.store.inbox(owner, limit=limit, after=time_position(cursor))
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if more else None
    next_cursor = time_cursor(last["created_at"], last["_id"]) if last else None
    return InboxPage(rows, next_cursor)


async def mark_read(deps: Deps, caller: Principal, notification_id: str) -> Doc:
    """Set the read receipt of one of the caller's notifications once (an Admin's: any);
    another user's is 404 `NOTIFICATION_NOT_FOUND`, like one that does not exist."""
    store = deps.store
    row = await store.get(notification_id)
    if row is None:
        raise notification_not_found()
    ensure_owner(caller, row["user_id"], notification_not_found)
    updated = await store.mark_read(notification_id, deps.clock())
    if updated is None:
        raise notification_not_found()
    return updated
