"""Events emitted by the gateway. Who did it is the envelope's `actor`, not repeated in `data`."""

from __future__ import annotations

from pydantic import Field

from contracts.base import Event
from contracts.registry import event
from contracts.types import Service, UserRole


@event("gateway")
class AccessDenied(Event):
    """A request was refused for lack of a role (403); the envelope's actor is who tried."""

    method: str
    path: str
    required_roles: tuple[UserRole, ...] = ()
    request_id: str | None = None


@event("gateway")
class DeadLettersRedriven(Event):
    """An Admin moved a service's dead letters back onto its queue."""

    service: Service
    count: int = Field(ge=0)
