"""The published JSON Schemas are valid and accept exactly what the code puts on the wire."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from contracts import Envelope, all_events
from contracts.export import ROOT, SCHEMA_DIR, schema_filename
from contracts.testing import sample

pytestmark = pytest.mark.unit

EVENTS = all_events()


def validator(event_type: str) -> Draft202012Validator:
    path = ROOT / SCHEMA_DIR / schema_filename(EVENTS[event_type])
    schema = json.loads(path.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def wire(event_type: str, *, minimal: bool) -> dict[str, Any]:
    envelope = Envelope.wrap(sample(EVENTS[event_type], minimal=minimal), correlation_id="c1")
    data: dict[str, Any] = json.loads(envelope.to_json())
    return data


@pytest.mark.parametrize("minimal", [False, True], ids=["full", "minimal"])
@pytest.mark.parametrize("event_type", sorted(EVENTS))
def test_published_schema_accepts_the_wire_form(event_type: str, minimal: bool) -> None:
    errors = list(validator(event_type).iter_errors(wire(event_type, minimal=minimal)))
    assert errors == []


def test_published_schema_refuses_another_type_and_missing_fields() -> None:
    check = validator("OrderPlaced")
    message = wire("OrderPlaced", minimal=True)
    assert not check.is_valid(message | {"type": "OrderPaid"})
    assert not check.is_valid({key: v for key, v in message.items() if key != "id"})
    del message["data"]["orderId"]
    assert not check.is_valid(message)
