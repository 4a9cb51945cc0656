"""The messaging span attributes the bus derives from its configuration."""

from __future__ import annotations

import pytest

from bus import BusConfig
from bus.tracing import PROCESS, PUBLISH, broker_attributes, process_attributes, span_name

pytestmark = pytest.mark.unit


def test_the_broker_is_named_by_host_and_port_never_by_its_credentials() -> None:
    attributes = broker_attributes("amqp://shop:s3cret@rabbit.internal:5673/shop")
    assert attributes == {"server.address": "rabbit.internal", "server.port": 5673}
    assert "s3cret" not in str(attributes)
    assert broker_attributes("amqps://u:p@mq.example.com/")["server.port"] == 5671
    assert broker_attributes("amqp://u:p@mq.example.com")["server.port"] == 5672


def test_span_names_are_operation_then_exchange() -> None:
    config = BusConfig(service="order", prefix="t1.")
    assert span_name(config, PUBLISH) == "publish t1.shop.events"
    assert span_name(config, PROCESS) == "process t1.shop.events"


def test_a_redelivery_keeps_its_routing_key_and_counts_its_attempt() -> None:
    config = BusConfig(service="inventory")
    attributes = process_attributes(config, "order.placed", "e-1", 3)
    assert attributes["messaging.destination.name"] == "shop.events"
    assert attributes["messaging.rabbitmq.destination.routing_key"] == "order.placed"
    assert attributes["messaging.consumer.group.name"] == "inventory.events"
    assert attributes["shop.messaging.attempt"] == 3
    assert "messaging.rabbitmq.message.delivery_tag" not in attributes  # none outside a channel
