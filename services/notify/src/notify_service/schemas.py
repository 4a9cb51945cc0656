"""Request and response models of the notify service's HTTP API (api.md, Notifications)."""

from __future__ import annotations

from datetime import datetime

from contracts.types import Channel, NotificationType
from kit.models import ResponseModel
from kit.mongo import Doc


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

    @classmethod
    def of(cls, row: Doc) -> Notification:
        """The API's view of a stored notification row."""
        return cls(
            notification_id=row["_id"],
            type=row["type"],
            channel=row["channel"],
            title=row["title"],
            body=row["body"],
            entity_type=row.get("entity_type"),
            entity_id=row.get("entity_id"),
            status=row["status"],
            created_at=row["created_at"],
            read_at=row.get("read_at"),
        )
