"""The analytics bus binds every event but payment's instruction (shared smoke tests:
tests/unit/test_service_apps.py)."""

from __future__ import annotations

from typing import Any

import pytest
from analytics_service.bootstrap import bootstrap
from analytics_service.handlers import HANDLERS
from analytics_service.settings import AnalyticsSettings
from pymongo import AsyncMongoClient

from bus import ServiceBus, routing_keys_for
from contracts.catalogue import CONSUMERS
from contracts.registry import all_events

pytestmark = pytest.mark.unit


def test_the_real_bus_binds_every_event_but_payments_instruction() -> None:
    mongo: AsyncMongoClient[Any] = AsyncMongoClient("mongodb://127.0.0.1:1", connect=False)
    deps = bootstrap(AnalyticsSettings(bus_prefix="x."), mongo=mongo)
    assert isinstance(deps.bus, ServiceBus)
    assert deps.bus.config.extra_bindings == ()
    catalogue = {all_events()[name].ROUTING_KEY for name in CONSUMERS}
    assert routing_keys_for(HANDLERS) == catalogue - {"payment.requested"}
    assert deps.bus.config.prefix == "x."
    assert deps.bus.config.service == "analytics"
