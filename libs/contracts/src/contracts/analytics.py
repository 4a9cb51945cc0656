"""Events emitted by the analytics service."""

from __future__ import annotations

from pydantic import AwareDatetime, Field

from contracts.base import Event
from contracts.registry import event


@event("analytics")
class PromotionGranted(Event):
    """A user earned a promotion code, valid until `expires_at`."""

    user_id: str
    code: str
    percent_off: int = Field(ge=1, le=100)
    expires_at: AwareDatetime
    reason: str
