"""Events emitted by the notify service."""

from __future__ import annotations

from contracts.base import Event
from contracts.registry import event
from contracts.types import Channel, NotificationType


class _Notification(Event):
    notification_id: str
    user_id: str
    channel: Channel
    template: NotificationType
    entity_type: str | None = None
    entity_id: str | None = None


@event("notify")
class NotificationSent(_Notification):
    """A notification was delivered on one channel (in-app, email, SMS or push)."""


@event("notify")
class NotificationFailed(_Notification):
    """A notification could not be delivered on one channel."""

    reason: str
