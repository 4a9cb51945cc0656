"""What drives an order's step: the policy's plain values, the cause, and the events it raises."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from contracts import Envelope, Event
from contracts.envelope import Actor


@dataclass(frozen=True)
class Policy:
    """The settings the transitions need, as plain values (the service passes its settings)."""

    approval_threshold_cents: int = 500_000
    # How long a placed order waits for inventory's answer before it is given up.
    stock_window: timedelta = timedelta(minutes=15)
    decision_window: timedelta = timedelta(minutes=15)
    approval_window: timedelta = timedelta(hours=24)
    payment_window: timedelta = timedelta(minutes=15)
    # PAID waits for inventory's commit too: unanswered, the order is cancelled COMMIT_FAILED.
    commit_window: timedelta = timedelta(minutes=2)
    # Customer retries of a failed payment per order (api.md), so a card cannot be tried forever.
    max_payment_retries: int = 5
    # After delivery (api.md "Fulfilment and returns"): how long a return may be asked for, how
    # long an approved return's parcel may take to arrive, how long payment may take to refund.
    return_window: timedelta = timedelta(days=30)
    return_receive_window: timedelta = timedelta(days=30)
    refund_window: timedelta = timedelta(seconds=900)


@dataclass(frozen=True)
class Cause:
    """What drives a step: when, who and from where, and the event or request behind it."""

    at: datetime
    actor: Actor = Actor()
    service: str = "order"
    event_id: str | None = None
    event_type: str | None = None


@dataclass(frozen=True)
class Raised:
    """An event the aggregate raised and the envelope id it must be published under."""

    event: Event
    event_id: str

    def envelope(
        self, correlation_id: str, *, causation_id: str | None = None, actor: Actor | None = None
    ) -> Envelope[Event]:
        """The event in its envelope, under the id the timeline already names."""
        wrapped = Envelope.wrap(
            self.event,
            correlation_id=correlation_id,
            causation_id=causation_id,
            actor=actor or Actor(),
        )
        return wrapped.model_copy(update={"id": self.event_id})
