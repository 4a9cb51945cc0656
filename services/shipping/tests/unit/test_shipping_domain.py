"""The shipping rules and the sandbox carrier, pure."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from shipping_service.carrier import (
    SANDBOX_CARRIER,
    SandboxCarrier,
    check_digit,
    is_tracking_number,
)
from shipping_service.domain import (
    MOVES,
    STATUSES,
    InvalidState,
    due_before,
    fulfilled_lines,
    move,
    needs_booking,
    shipment_id_for,
)

pytestmark = pytest.mark.unit


def test_the_states_and_the_moves_between_them() -> None:
    assert STATUSES == ("PENDING", "SHIPPED", "DELIVERED")
    assert move("ship", "PENDING") == MOVES["ship"]
    assert MOVES["ship"].target == "SHIPPED" and MOVES["deliver"].target == "DELIVERED"
    assert move("deliver", "SHIPPED").stamp == "delivered_at"


@pytest.mark.parametrize(
    ("action", "current"),
    [("ship", "SHIPPED"), ("ship", "DELIVERED"), ("deliver", "PENDING"), ("deliver", "DELIVERED")],
)
def test_a_move_from_another_state_is_invalid(action: str, current: str) -> None:
    with pytest.raises(InvalidState) as refused:
        move(action, current)  # type: ignore[arg-type]
    assert refused.value.current == current


def test_one_order_one_shipment_id() -> None:
    assert shipment_id_for("o1") == shipment_id_for("o1")
    assert shipment_id_for("o1") != shipment_id_for("o2")


def test_the_parcel_holds_the_fulfilled_quantities_each_product_once() -> None:
    items = [("lamp", 2), ("gone", 0), ("desk", 1), ("lamp", 1)]
    assert fulfilled_lines(items) == [("lamp", 3), ("desk", 1)]
    assert fulfilled_lines([("gone", 0)]) == []


def test_due_before_counts_back_from_now() -> None:
    now = datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC)
    assert due_before(now, 30) == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_the_sandbox_books_only_when_no_tracking_number_is_given() -> None:
    assert needs_booking(None, None, SANDBOX_CARRIER)
    assert needs_booking(SANDBOX_CARRIER, None, SANDBOX_CARRIER)
    assert not needs_booking("DHL", "JD0146", SANDBOX_CARRIER)
    assert not needs_booking(None, "9400", SANDBOX_CARRIER)
    assert not needs_booking("DHL", None, SANDBOX_CARRIER)  # the schema refuses this one


def test_sandbox_tracking_numbers_look_like_postal_barcodes_unique_per_shipment() -> None:
    carrier = SandboxCarrier()
    first = asyncio.run(carrier.book("s1"))
    assert first.carrier == SANDBOX_CARRIER
    assert len(first.tracking_number) == 22 and first.tracking_number.startswith("94")
    assert is_tracking_number(first.tracking_number)
    assert asyncio.run(carrier.book("s1")) == first  # idempotent, as a carrier's booking API
    numbers = {asyncio.run(carrier.book(f"s{n}")).tracking_number for n in range(2000)}
    assert len(numbers) == 2000


def test_the_check_digit_catches_a_typo() -> None:
    body = "940010000000000000000"
    number = body + str(check_digit(body))
    assert is_tracking_number(number)
    typo = number[:5] + ("1" if number[5] != "1" else "2") + number[6:]
    assert not is_tracking_number(typo)
    assert not is_tracking_number("94" + "x" * 20)
    assert not is_tracking_number(number[:-1])
