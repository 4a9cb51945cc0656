"""compatibility_problems on small hand-written schemas: one test per rule, so each can fail."""

from __future__ import annotations

from typing import Any

import pytest

from contracts.compat import compatibility_problems

pytestmark = pytest.mark.unit


def obj(required: tuple[str, ...] = (), **props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(required)}


STRING = {"type": "string"}
INTEGER = {"type": "integer"}
OPTIONAL_STRING = {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}


def test_identical_schemas_are_compatible() -> None:
    schema = obj(("orderId",), orderId=STRING, totalCents=INTEGER)
    assert compatibility_problems(schema, schema) == []


def test_new_optional_property_is_compatible() -> None:
    old = obj(("orderId",), orderId=STRING)
    new = obj(("orderId",), orderId=STRING, promoCode=OPTIONAL_STRING)
    assert compatibility_problems(old, new) == []


def test_required_property_becoming_optional_is_compatible() -> None:
    old = obj(("orderId", "note"), orderId=STRING, note=STRING)
    new = obj(("orderId",), orderId=STRING, note=STRING)
    assert compatibility_problems(old, new) == []


def test_new_enum_value_is_compatible() -> None:
    old = obj(reason={"type": "string", "enum": ["a", "b"]})
    new = obj(reason={"type": "string", "enum": ["a", "b", "c"]})
    assert compatibility_problems(old, new) == []


def test_removed_property() -> None:
    old = obj(("orderId",), orderId=STRING, note=OPTIONAL_STRING)
    new = obj(("orderId",), orderId=STRING)
    assert compatibility_problems(old, new) == ["$.note: property removed"]


def test_newly_required_property() -> None:
    old = obj(("orderId",), orderId=STRING, note=OPTIONAL_STRING)
    new = obj(("orderId", "note"), orderId=STRING, note=OPTIONAL_STRING)
    assert compatibility_problems(old, new) == ["$.note: property newly required"]


def test_new_required_property() -> None:
    old = obj(("orderId",), orderId=STRING)
    new = obj(("orderId", "currency"), orderId=STRING, currency=STRING)
    assert compatibility_problems(old, new) == ["$.currency: property newly required"]


def test_changed_type() -> None:
    old = obj(total=INTEGER)
    new = obj(total=STRING)
    assert compatibility_problems(old, new) == ["$.total: type changed from integer to string"]


def test_made_nullable_is_a_type_change() -> None:
    # Old consumers expect a string and would get null.
    old = obj(("note",), note=STRING)
    new = obj(("note",), note=OPTIONAL_STRING)
    assert compatibility_problems(old, new) == ["$.note: type changed from string to null, string"]


def test_removed_enum_value() -> None:
    old = obj(reason={"type": "string", "enum": ["cancelled", "expired"]})
    new = obj(reason={"type": "string", "enum": ["cancelled"]})
    assert compatibility_problems(old, new) == ["$.reason: enum value(s) removed: expired"]


def test_changed_const_removes_the_old_value() -> None:
    old = obj(version={"const": 1, "type": "integer"})
    new = obj(version={"const": 2, "type": "integer"})
    assert compatibility_problems(old, new) == ["$.version: enum value(s) removed: 1"]


def test_newly_restricted_values() -> None:
    old = obj(reason=STRING)
    new = obj(reason={"type": "string", "enum": ["a"]})
    assert compatibility_problems(old, new) == ["$.reason: values newly restricted to a"]


def test_rules_apply_inside_refs_and_arrays() -> None:
    def schema(line: dict[str, Any]) -> dict[str, Any]:
        return {
            "$defs": {"Line": line},
            **obj(lines={"type": "array", "items": {"$ref": "#/$defs/Line"}}),
        }

    old = schema(obj(("productId",), productId=STRING, quantity=INTEGER))
    new = schema(obj(("productId", "quantity"), productId=STRING))
    assert compatibility_problems(old, new) == [
        "$.lines[].quantity: property removed",
        "$.lines[].quantity: property newly required",
    ]


def test_rules_apply_inside_optional_nested_objects() -> None:
    def schema(prefs: dict[str, Any]) -> dict[str, Any]:
        return {
            "$defs": {"Prefs": prefs},
            **obj(prefs={"anyOf": [{"$ref": "#/$defs/Prefs"}, {"type": "null"}]}),
        }

    old = schema(obj(channel={"type": "string", "enum": ["email", "sms"]}))
    new = schema(obj(channel={"type": "string", "enum": ["email"]}))
    assert compatibility_problems(old, new) == ["$.prefs.channel: enum value(s) removed: sms"]


def test_recursive_schemas_terminate() -> None:
    node = {"$defs": {"N": obj(next={"anyOf": [{"$ref": "#/$defs/N"}, {"type": "null"}]})}}
    schema = {**node, "$ref": "#/$defs/N"}
    assert compatibility_problems(schema, schema) == []
