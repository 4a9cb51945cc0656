"""Pure parts of the bus: config defaults, names, queue arguments, retry headers, tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest

from bus import BusConfig, HandlerContext, Names, handler_name, routing_keys_for
from bus.context import check_table, handlers_for
from bus.inbox import inbox_retention
from bus.retry import (
    Failure,
    attempt_of,
    carried_headers,
    dead_letter_headers,
    describe,
    redrive_headers,
    retry_headers,
)
from bus.runtime import bus_config
from bus.topology import format_delay, retry_queue_arguments, service_queue_arguments
from contracts import Envelope, Event
from contracts.registry import event
from kit.settings import ServiceSettings

pytestmark = pytest.mark.unit


@event("test")
class BusUnitRulePing(Event):
    key: str


@event("test")
class BusUnitRulePong(Event):
    key: str


async def note_ping(envelope: Envelope[Any], ctx: HandlerContext) -> None:
    """A handler for tables in these tests."""


async def audit_everything(envelope: Envelope[Any], ctx: HandlerContext) -> None:
    """A catch-all handler, as analytics has."""


def test_config_defaults_follow_the_retry_schedule() -> None:
    config = BusConfig(service="order")
    assert config.retry_delays == (1.0, 10.0, 60.0)
    assert config.max_attempts == 4
    assert config.delivery_limit == 20
    assert config.lease_seconds == 30.0
    assert config.relay_poll_interval == 1.0
    assert (config.prefetch, config.handler_concurrency) == (16, 4)
    assert [config.delay_for(a) for a in (1, 2, 3, 4, 5)] == [1.0, 10.0, 60.0, 60.0, 60.0]
    assert BusConfig(service="x", retry_delays=(0.2, 0.5), max_attempts=6).max_attempts == 6


@pytest.mark.parametrize(
    "overrides",
    [
        {"service": ""},
        {"retry_delays": ()},
        {"retry_delays": (1, -1)},
        {"prefetch": 0},
        {"dlq_residency_days": 0},
    ],
)
def test_config_refuses_nonsense(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        BusConfig(**{"service": "order", **overrides})


def test_names_carry_the_prefix_and_readable_delays() -> None:
    names = Names.of(BusConfig(service="inventory", prefix="t1.", retry_delays=(0.2, 10, 60)))
    assert names.exchange == "t1.shop.events"
    assert names.dlx == "t1.shop.dlx"
    assert names.queue == "t1.inventory.events"
    assert names.dlq == "t1.inventory.dlq"
    assert list(names.retry_queues.values()) == [
        "t1.inventory.retry.0.2s",
        "t1.inventory.retry.10s",
        "t1.inventory.retry.60s",
    ]
    assert format_delay(1.5) == "1.5s"


def test_queue_arguments_make_dead_lettering_at_least_once() -> None:
    config = BusConfig(service="payment", delivery_limit=7)
    names = Names.of(config)
    args = service_queue_arguments(config, names)
    assert args == {
        "x-queue-type": "quorum",
        "x-delivery-limit": 7,
        "x-dead-letter-exchange": "shop.dlx",
        "x-dead-letter-routing-key": "payment.dlq",
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    retry = retry_queue_arguments(names, 0.2)
    assert retry["x-message-ttl"] == 200
    assert retry["x-dead-letter-exchange"] == ""
    assert retry["x-dead-letter-routing-key"] == "payment.events"


def test_attempt_defaults_to_one_and_tolerates_garbage() -> None:
    assert attempt_of(None) == 1
    assert attempt_of({"x-attempt": 3}) == 3
    assert attempt_of({"x-attempt": "2"}) == 2
    assert attempt_of({"x-attempt": "x"}) == 1
    assert attempt_of({"x-attempt": 0}) == 1


def test_retry_headers_count_up_keep_trace_and_drop_broker_bookkeeping() -> None:
    incoming = {
        "traceparent": "00-abc-def-01",
        "x-death": [{"count": 1}],
        "x-first-death-queue": "q",
        "x-delivery-count": 2,
    }
    failure = Failure(KeyError("sku"), 1, "order.placed", "h", "inventory")
    headers = retry_headers(incoming, failure, limit=100)
    assert headers == {
        "traceparent": "00-abc-def-01",
        "x-original-routing-key": "order.placed",
        "x-attempt": 2,
        "x-last-error": "KeyError: 'sku'",
    }
    # The routing key of a message coming back from a delay queue is the queue name: the
    # original one is kept from the first failure.
    again = retry_headers(headers, Failure(KeyError("sku"), 2, "inventory.events", "h", "i"), 100)
    assert again["x-original-routing-key"] == "order.placed"
    assert again["x-attempt"] == 3


def test_dead_letter_headers_say_what_failed_where_and_when() -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    failure = Failure(ValueError("x" * 50), 4, "order.placed", "inv.reserve", "inventory")
    headers = dead_letter_headers({"x-last-error": "old", "x-attempt": 4}, failure, 20, now)
    assert headers["x-error"] == "ValueError: xxxxxxx…"
    assert len(headers["x-error"]) == 20
    assert headers["x-error-type"] == "ValueError"
    assert headers["x-attempts"] == 4
    assert headers["x-failed-at"] == "2026-01-02T03:04:05+00:00"
    assert headers["x-service"] == "inventory"
    assert headers["x-handler"] == "inv.reserve"
    assert headers["x-original-routing-key"] == "order.placed"
    assert "x-last-error" not in headers


def test_redrive_headers_reset_the_attempts_and_keep_the_error_as_history() -> None:
    now = datetime(2026, 1, 2, tzinfo=UTC)
    headers = redrive_headers(
        {"x-error": "boom", "x-attempts": 4, "x-attempt": 4, "traceparent": "tp"}, now
    )
    assert headers == {
        "x-attempt": 1,
        "x-redriven-at": "2026-01-02T00:00:00+00:00",
        "x-redriven-error": "boom",
        "traceparent": "tp",
    }
    assert carried_headers(None) == {}
    assert describe(RuntimeError("short"), 100) == "RuntimeError: short"


def test_table_bindings_and_lookup_include_the_catch_all() -> None:
    table = {BusUnitRulePing: [note_ping], Event: [audit_everything]}
    assert routing_keys_for(table) == {"bus.unit.rule.ping", "#"}
    assert handlers_for(table, BusUnitRulePing) == [note_ping, audit_everything]
    assert handlers_for(table, BusUnitRulePong) == [audit_everything]
    assert handler_name(note_ping).endswith(".note_ping")


def test_table_refuses_two_handlers_with_one_name() -> None:
    def make() -> Any:
        async def same(envelope: Envelope[Any], ctx: HandlerContext) -> None:
            pass

        return same

    with pytest.raises(ValueError, match="are named"):
        check_table({BusUnitRulePing: [make(), make()]})
    with pytest.raises(ValueError, match="are named"):
        check_table({BusUnitRulePing: [make()], Event: [make()]})
    # One factory's handlers for different types never meet on one envelope: allowed.
    check_table({BusUnitRulePing: [make()], BusUnitRulePong: [make()]})


def test_rows_stay_with_their_writer_only_briefly() -> None:
    # A process killed between commit and publish leaves its rows to the others after this long
    # (the fault suite saw a capture wait the 30 s claim lease when rows were born with it).
    config = BusConfig(service="unit")
    assert config.own_lease_seconds <= 5.0 < config.lease_seconds


def test_dlq_residency_and_publish_timeout_are_settings_of_every_service() -> None:
    class Demo(ServiceSettings):
        service_name: ClassVar[str] = "demo"

    assert bus_config(Demo()).dlq_residency_days == 14.0
    assert bus_config(Demo(bus_dlq_residency_days=3)).dlq_residency_days == 3.0
    assert bus_config(Demo()).publish_timeout == 30.0
    assert bus_config(Demo(bus_publish_timeout=2)).publish_timeout == 2.0
    assert inbox_retention(3) == timedelta(days=7 + 3 + 1)
