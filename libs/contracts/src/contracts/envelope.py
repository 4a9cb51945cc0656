"""The envelope every message on `shop.events` travels in (events.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, cast

from pydantic import AwareDatetime, Field, ValidationError

from contracts.base import ContractModel, Event
from contracts.ids import new_id

Role = Literal["Customer", "Manager", "Admin", "system"]


class ContractError(ValueError):
    """A message that does not match the catalogue: unknown type, bad JSON, invalid data."""


class Actor(ContractModel):
    """Who caused the event, and from where (the audit trail's who and where)."""

    user_id: str | None = None
    role: Role = "system"
    ip: str | None = None
    device: str | None = None
    region: str | None = None


SYSTEM = Actor()


class Envelope[E: Event](ContractModel):
    """An event with its metadata. `Envelope[OrderPlaced]` types `data` for handlers."""

    id: str = Field(default_factory=new_id)
    type: str
    version: int
    occurred_at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))
    source: str
    correlation_id: str
    causation_id: str | None = None
    actor: Actor = SYSTEM
    data: E

    @staticmethod
    def wrap[F: Event](
        event: F,
        *,
        correlation_id: str,
        causation_id: str | None = None,
        actor: Actor = SYSTEM,
    ) -> Envelope[F]:
        """Put a new event in an envelope with a fresh id and the current time."""
        # Parametrize with the concrete class so the schema and `data` keep the event's type.
        model = cast("type[Envelope[F]]", Envelope[type(event)])  # type: ignore[misc]
        return model(
            type=event.TYPE,
            version=event.VERSION,
            source=event.SOURCE,
            correlation_id=correlation_id,
            causation_id=causation_id,
            actor=actor,
            data=event,
        )

    def caused[F: Event](self, event: F, *, actor: Actor | None = None) -> Envelope[F]:
        """Wrap an event that this one caused: same correlation id, causation = this id."""
        return Envelope.wrap(
            event,
            correlation_id=self.correlation_id,
            causation_id=self.id,
            actor=actor if actor is not None else self.actor,
        )

    @property
    def routing_key(self) -> str:
        return self.data.ROUTING_KEY

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready dict with camelCase keys."""
        return self.model_dump(mode="json", by_alias=True)

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> Envelope[Event]:
        """Parse and validate a message body against the catalogue, or raise ContractError."""
        from contracts.registry import event_class

        try:
            header = _Header.model_validate_json(raw)
        except ValidationError as exc:
            raise ContractError(f"not an envelope: {_summary(exc)}") from exc
        model = event_class(header.type)
        if header.version != model.VERSION:
            # A new version is a breaking change: never read it with the old model.
            raise ContractError(
                f"unsupported {header.type} version {header.version} (known: {model.VERSION})"
            )
        try:
            return Envelope[model].model_validate_json(raw)  # type: ignore[valid-type]
        except ValidationError as exc:
            raise ContractError(f"invalid {header.type}: {_summary(exc)}") from exc


class _Header(ContractModel):
    type: str
    version: int


def _summary(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
    )[:500]
