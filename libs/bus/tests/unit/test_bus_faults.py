"""The crash points of the fault suite: off by default, armed only through the settings
(`BUS_CRASH_AT`, refused outside dev and test), carried to the relay and consumer in `BusConfig`."""

from __future__ import annotations

from typing import Any

import pytest

from bus import BusConfig
from bus import config as bus_config_module
from bus.config import CONSUMER_AFTER_COMMIT, CRASH_POINTS, RELAY_BEFORE_PUBLISH
from bus.consumer import Consumer
from bus.relay import OutboxRelay
from bus.runtime import bus_config
from kit.settings import ServiceSettings

pytestmark = pytest.mark.unit


class Crashed(Exception):
    pass


class Db(dict[str, Any]):
    """A database stand-in: any collection is None (nothing here touches one)."""

    def __missing__(self, key: str) -> None:
        return None


def settings(**values: Any) -> ServiceSettings:
    return ServiceSettings(**values)


def test_points_are_off_unless_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BUS_CRASH_AT", raising=False)
    assert bus_config(settings()).crash_at == ()
    assert not any(bus_config(settings()).crashes_at(point) for point in CRASH_POINTS)

    monkeypatch.setenv("BUS_CRASH_AT", "consumer.after_commit, relay.before_publish")
    both = bus_config(settings())
    assert all(both.crashes_at(point) for point in CRASH_POINTS)

    monkeypatch.setenv("BUS_CRASH_AT", "consumer.after_commit")
    one = bus_config(settings())
    assert one.crashes_at(CONSUMER_AFTER_COMMIT) and not one.crashes_at(RELAY_BEFORE_PUBLISH)


def test_crash_points_are_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUS_CRASH_AT", "relay.before_publish")
    with pytest.raises(ValueError, match="BUS_CRASH_AT"):
        settings(env="prod")
    for env in ("dev", "test"):
        assert settings(env=env).bus_crash_at == ("relay.before_publish",)


def test_an_unknown_crash_point_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown crash points"):
        BusConfig(service="unit", crash_at=("relay.after_lunch",))


def relay_with(rows: list[dict[str, Any]], config: BusConfig) -> tuple[OutboxRelay, list[str]]:
    published: list[str] = []

    class Publisher:
        async def publish_raw(self, routing_key: str, body: bytes, **_: Any) -> None:
            published.append(routing_key)

    relay = OutboxRelay(Db(), Publisher(), config)  # type: ignore[arg-type]

    async def next_batch() -> list[dict[str, Any]]:
        return rows

    relay._next_batch = next_batch  # type: ignore[method-assign]
    return relay, published


def raise_crashed() -> None:
    raise Crashed


async def test_the_relay_dies_holding_claimed_rows_only_when_armed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bus_config_module, "crash", raise_crashed)
    armed = BusConfig(service="unit", crash_at=(RELAY_BEFORE_PUBLISH,))
    relay, published = relay_with([{"_id": "e1", "type": "OrderPlaced"}], armed)
    with pytest.raises(Crashed):
        await relay.publish_pending_once()
    assert published == []

    empty, _ = relay_with([], armed)
    assert await empty.publish_pending_once() == 0  # nothing claimed: nothing to die for

    unarmed, _ = relay_with([], BusConfig(service="unit"))
    assert not unarmed._crash_before_publish


def test_the_consumer_is_armed_by_its_config() -> None:
    armed = Consumer(
        BusConfig(service="unit", crash_at=(CONSUMER_AFTER_COMMIT,)),
        {},
        None,  # type: ignore[arg-type]
        Db(),  # type: ignore[arg-type]
    )
    assert armed._crash_after_commit
    unarmed = Consumer(BusConfig(service="unit"), {}, None, Db())  # type: ignore[arg-type]
    assert not unarmed._crash_after_commit
