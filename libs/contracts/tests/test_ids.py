"""Event and row ids are UUIDv7: version 7, RFC variant, ordered by creation time."""

from __future__ import annotations

import time
import uuid

import pytest

from contracts import new_id, uuid7

pytestmark = pytest.mark.unit


def test_version_and_variant() -> None:
    value = uuid7()
    assert value.version == 7
    assert value.variant == uuid.RFC_4122


def test_timestamp_is_now() -> None:
    before = time.time_ns() // 1_000_000
    value = uuid7()
    after = time.time_ns() // 1_000_000
    assert before <= value.int >> 80 <= after


def test_ids_sort_in_creation_order_even_within_one_millisecond() -> None:
    ids = [new_id() for _ in range(20_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(i).version == 7 for i in ids)


def test_ids_sort_across_milliseconds() -> None:
    first = new_id()
    time.sleep(0.002)
    assert new_id() > first
