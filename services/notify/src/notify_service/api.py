"""HTTP routes of the notify service, under `/api/v1/notifications` (via the gateway)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Query, Request

from contracts.types import Channel, NotificationType
from kit.auth import CurrentUser, ensure_owner
from kit.errors import PROBLEM_RESPONSES, Problem, forbidden, not_found
from kit.models import (
    DEFAULT_LIMIT,
    Cursor,
    Limit,
    Page,
    ResponseModel,
    decode_cursor,
    encode_cursor,
    invalid_cursor,
)
from notify_service.store import NotifyStore

router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])


def get_store(request: Request) -> NotifyStore:
    return cast(NotifyStore, request.app.state.deps.store)


StoreDep = Annotated[NotifyStore, Depends(get_store)]


class Notification(ResponseModel):
    """One notification of the caller's inbox, on one channel, with its delivery status."""

    notification_id: str
    type: NotificationType
    channel: Channel
    title: str
    body: str
    entity_type: str | None = None
    entity_id: str | None = None
    status: str
    created_at: datetime
    read_at: datetime | None = None


def _out(doc: dict[str, Any]) -> Notification:
    return Notification(
        notification_id=doc["_id"],
        type=doc["type"],
        channel=doc["channel"],
        title=doc["title"],
        body=doc["body"],
        entity_type=doc.get("entity_type"),
        entity_id=doc.get("entity_id"),
        status=doc["status"],
        created_at=doc["created_at"],
        read_at=doc.get("read_at"),
    )


def _not_found() -> Problem:
    return not_found("NOTIFICATION_NOT_FOUND", "No such notification.")


@router.get("", responses=PROBLEM_RESPONSES)
async def list_notifications(
    user: CurrentUser,
    store: StoreDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    user_id: Annotated[str | None, Query(alias="userId", max_length=100)] = None,
) -> Page[Notification]:
    """The caller's inbox, newest first (an Admin may name another user with `userId`)."""
    owner = user_id or user.user_id
    if owner != user.user_id and user.role != "Admin":
        raise forbidden()
    position = decode_cursor(cursor)
    after = None
    if position is not None:
        at, last = position.get("at"), position.get("id")
        if not isinstance(at, datetime) or not isinstance(last, str):
            raise invalid_cursor()
        after = (at, last)
    docs = await store.inbox(owner, limit=limit, after=after)
    more = len(docs) > limit
    docs = docs[:limit]
    next_cursor = (
        encode_cursor({"at": docs[-1]["created_at"], "id": docs[-1]["_id"]}) if more else None
    )
    return Page[Notification](items=[_out(d) for d in docs], next_cursor=next_cursor)


@router.post("/{notification_id}/read", responses=PROBLEM_RESPONSES)
async def mark_read(notification_id: str, user: CurrentUser, store: StoreDep) -> Notification:
    """Mark one of the caller's notifications read (another user's is 404)."""
    doc = await store.get(notification_id)
    if doc is None:
        raise _not_found()
    ensure_owner(user, doc["user_id"], _not_found)
    updated = await store.mark_read(notification_id, datetime.now(UTC))
    if updated is None:
        raise _not_found()
    return _out(updated)


ROUTERS = [router]
