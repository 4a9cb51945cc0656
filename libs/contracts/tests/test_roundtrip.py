"""Every registered event survives the wire: wrap → JSON → parse gives the same envelope."""

from __future__ import annotations

import json
from typing import Any

import pytest

from contracts import Actor, Envelope, Event, all_events, routing_key_for
from contracts.testing import sample

pytestmark = pytest.mark.unit

EVENTS = all_events()


def wire_keys(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [key for key, value in node.items() for key in (key, *wire_keys(value))]
    if isinstance(node, list):
        return [key for item in node for key in wire_keys(item)]
    return []


@pytest.mark.parametrize("minimal", [False, True], ids=["full", "minimal"])
@pytest.mark.parametrize("event_type", sorted(EVENTS))
def test_round_trip(event_type: str, minimal: bool) -> None:
    model = EVENTS[event_type]
    data = sample(model, minimal=minimal)
    envelope = Envelope.wrap(
        data,
        correlation_id="corr-1",
        causation_id="cause-1",
        actor=Actor(user_id="u1", role="Customer", ip="10.0.0.1", device="web", region="eu"),
    )

    raw = envelope.to_json()
    parsed = Envelope.from_json(raw)

    assert parsed == envelope
    assert type(parsed.data) is model
    assert parsed.routing_key == routing_key_for(event_type) == model.ROUTING_KEY
    assert (parsed.type, parsed.version, parsed.source) == (model.TYPE, model.VERSION, model.SOURCE)
    keys = wire_keys(json.loads(raw))
    assert "data" in keys and "occurredAt" in keys
    assert [key for key in keys if "_" in key] == []


def test_caused_keeps_the_journey() -> None:
    first = Envelope.wrap(sample(EVENTS["OrderPlaced"]), correlation_id="order-1")
    second = first.caused(sample(EVENTS["StockReserved"]))
    assert second.correlation_id == "order-1"
    assert second.causation_id == first.id
    assert second.actor == first.actor
    assert second.id != first.id


def test_events_are_frozen() -> None:
    event: Event = sample(EVENTS["OrderPlaced"])
    with pytest.raises(ValueError):
        event.order_id = "other"  # type: ignore[attr-defined]


def test_python_names_are_accepted_too() -> None:
    model = EVENTS["StockLow"]
    by_alias = model.model_validate(
        {"productId": "p1", "name": "Mug", "available": 2, "threshold": 5}
    )
    by_name = model.model_validate(
        {"product_id": "p1", "name": "Mug", "available": 2, "threshold": 5}
    )
    assert by_alias == by_name
