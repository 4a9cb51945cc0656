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


# Not emitted for in-app rows: one is delivered by being stored, and the inbox API is its
# record. `channel` keeps `inApp` in its set (the published v1 schema admits it).
@event("notify")
class NotificationSent(_Notification):
    """A notification was delivered on a channel with a real delivery (email, SMS or push)."""


@event("notify")
class NotificationFailed(_Notification):
    """A notification could not be delivered on one channel."""

    reason: str
