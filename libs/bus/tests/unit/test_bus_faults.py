"""The crash points of the fault suite: off by default, armed only by `BUS_CRASH_AT`."""

from __future__ import annotations

from typing import Any

import pytest

from bus import BusConfig, faults
from bus.relay import OutboxRelay

pytestmark = pytest.mark.unit


class Crashed(Exception):
    pass


def test_points_are_off_unless_named() -> None:
    assert not faults.armed(faults.CONSUMER_AFTER_COMMIT, {})
    assert not faults.armed(faults.RELAY_BEFORE_PUBLISH, {"BUS_CRASH_AT": ""})
    both = {"BUS_CRASH_AT": "consumer.after_commit, relay.before_publish"}
    assert all(faults.armed(point, both) for point in faults.POINTS)
    assert not faults.armed(faults.RELAY_BEFORE_PUBLISH, {"BUS_CRASH_AT": "consumer.after_commit"})


def relay_with(rows: list[dict[str, Any]]) -> tuple[OutboxRelay, list[str]]:
    published: list[str] = []

    class Publisher:
        async def publish_raw(self, routing_key: str, body: bytes, **_: Any) -> None:
            published.append(routing_key)

    class Db(dict[str, Any]):
        def __missing__(self, key: str) -> None:
            return None

    relay = OutboxRelay(Db(), Publisher(), BusConfig(service="unit"))  # type: ignore[arg-type]

    async def next_batch() -> list[dict[str, Any]]:
        return rows

    relay._next_batch = next_batch  # type: ignore[method-assign]
    return relay, published


def raise_crashed() -> None:
    raise Crashed


async def test_the_relay_dies_holding_claimed_rows_only_when_armed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(faults, "crash", raise_crashed)
    monkeypatch.setenv("BUS_CRASH_AT", "relay.before_publish")
    relay, published = relay_with([{"_id": "e1", "type": "OrderPlaced"}])
    with pytest.raises(Crashed):
        await relay.publish_pending_once()
    assert published == []

    empty, _ = relay_with([])
    assert await empty.publish_pending_once() == 0  # nothing claimed: nothing to die for

    monkeypatch.delenv("BUS_CRASH_AT")
    unarmed, _ = relay_with([])
    assert not unarmed._crash_before_publish
