"""A message that is not in the catalogue is refused with a ContractError that says why."""

from __future__ import annotations

import json
from typing import Any

import pytest

from contracts import ContractError, Envelope, all_events
from contracts.testing import sample

pytestmark = pytest.mark.unit


def placed_wire() -> dict[str, Any]:
    envelope = Envelope.wrap(sample(all_events()["OrderPlaced"]), correlation_id="o1")
    wire: dict[str, Any] = json.loads(envelope.to_json())
    return wire


def test_bad_json() -> None:
    with pytest.raises(ContractError, match="not an envelope"):
        Envelope.from_json(b"{not json")


def test_not_an_object() -> None:
    with pytest.raises(ContractError, match="not an envelope"):
        Envelope.from_json(b"[1, 2]")


def test_unknown_type() -> None:
    wire = placed_wire() | {"type": "OrderTeleported"}
    with pytest.raises(ContractError, match="unknown event type 'OrderTeleported'"):
        Envelope.from_json(json.dumps(wire))


def test_unknown_version() -> None:
    wire = placed_wire() | {"version": 2}
    with pytest.raises(ContractError, match="unsupported OrderPlaced version 2"):
        Envelope.from_json(json.dumps(wire))


def test_missing_required_data_field() -> None:
    wire = placed_wire()
    del wire["data"]["orderId"]
    with pytest.raises(ContractError, match=r"invalid OrderPlaced: data\.orderId: Field required"):
        Envelope.from_json(json.dumps(wire))


def test_object_where_a_string_is_expected() -> None:
    wire = placed_wire()
    wire["data"]["userId"] = {"$ne": None}
    with pytest.raises(ContractError, match=r"data\.userId: Input should be a valid string"):
        Envelope.from_json(json.dumps(wire))


def test_value_outside_a_closed_set() -> None:
    envelope = Envelope.wrap(sample(all_events()["StockReleased"]), correlation_id="o1")
    wire = json.loads(envelope.to_json())
    wire["data"]["reason"] = "stolen"
    with pytest.raises(ContractError, match=r"data\.reason: Input should be 'cancelled'"):
        Envelope.from_json(json.dumps(wire))


def test_naive_time_is_refused() -> None:
    wire = placed_wire() | {"occurredAt": "2026-01-01T00:00:00"}
    with pytest.raises(ContractError, match="occurredAt"):
        Envelope.from_json(json.dumps(wire))


def test_negative_money_is_refused() -> None:
    wire = placed_wire()
    wire["data"]["totalCents"] = -1
    with pytest.raises(ContractError, match=r"data\.totalCents"):
        Envelope.from_json(json.dumps(wire))


def test_message_is_short_and_readable() -> None:
    with pytest.raises(ContractError) as caught:
        Envelope.from_json(json.dumps({"type": "OrderPlaced", "version": 1, "data": {}}))
    message = str(caught.value)
    assert message.startswith("invalid OrderPlaced: ")
    assert len(message) < 600
