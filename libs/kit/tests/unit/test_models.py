"""Request base model rules, pages and cursors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from kit.errors import Problem
from kit.models import Page, ResponseModel, StrictModel, decode_cursor, encode_cursor

pytestmark = pytest.mark.unit


class Body(StrictModel):
    product_id: str
    quantity: int
    price: float = 0.0
    gift: bool = False
    note: str | None = None


class Item(ResponseModel):
    product_id: str
    price_cents: int


def test_strict_model_accepts_camel_and_snake_case_and_strips() -> None:
    assert Body.model_validate({"productId": " p1 ", "quantity": 2, "price": 3}).product_id == "p1"
    assert Body(product_id="p1", quantity=1).quantity == 1


@pytest.mark.parametrize(
    "data",
    [
        {"productId": "p1", "quantity": "2"},
        {"productId": "p1", "quantity": 2.5},
        {"productId": "p1", "quantity": True},
        {"productId": 5, "quantity": 1},
        {"productId": {"$gt": ""}, "quantity": 1},
        {"productId": "p1", "quantity": 1, "gift": "yes"},
        {"productId": "p1", "quantity": 1, "extra": 1},
        {"productId": "p" * 2001, "quantity": 1},
    ],
)
def test_strict_model_refuses_mistyped_and_unknown_values(data: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Body.model_validate(data)


def test_page_is_items_and_next_cursor_in_camel_case() -> None:
    page = Page[Item](items=[Item(product_id="p1", price_cents=100)], next_cursor="abc")
    assert page.model_dump() == {
        "items": [{"productId": "p1", "priceCents": 100}],
        "nextCursor": "abc",
    }


def test_cursor_round_trip() -> None:
    position = {"createdAt": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "id": "o-9", "n": 3}
    cursor = encode_cursor(position)
    assert "o-9" not in cursor  # opaque
    assert decode_cursor(cursor) == position
    assert decode_cursor(None) is None


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64 !!",
        encode_cursor({"id": "x"})[:-3] + "@@@",
        "W10",  # base64 of [] : not an object
        "eyJpZCI6eyIkZ3QiOiIifX0",  # {"id": {"$gt": ""}}: an operator, not a position
        "x" * 2000,
    ],
)
def test_bad_cursor_is_a_422(cursor: str) -> None:
    with pytest.raises(Problem) as excinfo:
        decode_cursor(cursor)
    assert excinfo.value.status == 422
    assert excinfo.value.code == "VALIDATION_ERROR"
