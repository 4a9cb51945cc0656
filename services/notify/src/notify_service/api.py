"""HTTP routes of the notify service, under `/api/v1/notifications` (via the gateway)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from kit.auth import CurrentUser
from kit.errors import PROBLEM_RESPONSES
from kit.models import DEFAULT_LIMIT, Cursor, Limit, Page
from notify_service import commands
from notify_service.deps import DepsDep
from notify_service.schemas import Notification

router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])


@router.get("", responses=PROBLEM_RESPONSES)
async def list_notifications(
    user: CurrentUser,
    deps: DepsDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    user_id: Annotated[str | None, Query(alias="userId", max_length=100)] = None,
) -> Page[Notification]:
    """The caller's inbox, newest first (an Admin may name another user with `userId`)."""
    page = await commands.inbox(deps, user, user_id=user_id, limit=limit, cursor=cursor)
    items = [Notification.of(row) for row in page.rows]
    return Page[Notification](items=items, next_cursor=page.next_cursor)


@router.post("/{notification_id}/read", responses=PROBLEM_RESPONSES)
async def mark_read(notification_id: str, user: CurrentUser, deps: DepsDep) -> Notification:
    """Mark one of the caller's notifications read (another user's is 404)."""
    return Notification.of(await commands.mark_read(deps, user, notification_id))


ROUTERS = [router]
