"""The catalogue: event type ↔ model ↔ routing key. Every event class registers with `@event`."""

from __future__ import annotations

from collections.abc import Callable

from contracts.base import Event, routing_key_for
from contracts.envelope import ContractError

_BY_TYPE: dict[str, type[Event]] = {}


def event[T: type[Event]](source: str, *, version: int = 1) -> Callable[[T], T]:
    """Register an event class under its class name, emitted by `source`."""

    def register(cls: T) -> T:
        name = cls.__name__
        if name in _BY_TYPE:
            raise RuntimeError(f"event type {name} registered twice")
        cls.TYPE = name
        cls.VERSION = version
        cls.SOURCE = source
        cls.ROUTING_KEY = routing_key_for(name)
        _BY_TYPE[name] = cls
        return cls

    return register


def event_class(event_type: str) -> type[Event]:
    """The model registered for a type name, or ContractError."""
    _load_catalogue()
    try:
        return _BY_TYPE[event_type]
    except KeyError:
        raise ContractError(f"unknown event type {event_type!r}") from None


def all_events() -> dict[str, type[Event]]:
    """The published catalogue, by name: the events defined in this package.

    Events registered elsewhere (a test's own ping events) can be parsed with `event_class`, but
    they are not part of the catalogue, its schemas or its AsyncAPI document.
    """
    _load_catalogue()
    return {
        name: cls
        for name, cls in sorted(_BY_TYPE.items())
        if cls.__module__.startswith(f"{__package__}.")
    }


def _load_catalogue() -> None:
    # Importing the producer modules runs their @event decorators.
    import contracts.catalogue  # noqa: F401
