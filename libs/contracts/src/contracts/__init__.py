"""Event contracts: the envelope and the catalogue of events.md, with no I/O."""

from contracts.base import ContractModel, Event, routing_key_for
from contracts.envelope import SYSTEM, Actor, ContractError, Envelope, Role
from contracts.ids import new_id, uuid7
from contracts.registry import all_events, event, event_class

__all__ = [
    "SYSTEM",
    "Actor",
    "ContractError",
    "ContractModel",
    "Envelope",
    "Event",
    "Role",
    "all_events",
    "event",
    "event_class",
    "new_id",
    "routing_key_for",
    "uuid7",
]
