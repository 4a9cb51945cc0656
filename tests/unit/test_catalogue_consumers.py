"""contracts.catalogue.CONSUMERS names exactly the subscriptions of every service's handler table.

Each service declares, at its start, the queues of the services consuming what it publishes,
from the catalogue (bus.topology.declare_peer_queues), so that an event published before its
consumer first started is kept. A handler whose event the catalogue does not list for its
service would miss such events: this test keeps the two in step.
"""

from __future__ import annotations

import importlib

import pytest

from bus.context import ALL_EVENTS, routing_keys_for
from contracts.catalogue import CONSUMERS
from contracts.registry import all_events

pytestmark = pytest.mark.unit

SERVICES = ("user", "inventory", "order", "payment", "notify", "analytics", "shipping")


@pytest.mark.parametrize("service", SERVICES)
def test_every_subscription_is_in_the_catalogue(service: str) -> None:
    handlers = importlib.import_module(f"{service}_service.handlers").HANDLERS
    listed = {
        cls.ROUTING_KEY for name, cls in all_events().items() if service in CONSUMERS.get(name, ())
    }
    keys = set(routing_keys_for(handlers))
    if ALL_EVENTS in keys:  # a `#` subscriber must be listed for every event
        keys.discard(ALL_EVENTS)
        keys |= {cls.ROUTING_KEY for cls in all_events().values()}
    missing = keys - listed
    assert not missing, f"{service} handles {sorted(missing)} but the catalogue does not say so"
    # The other way round: a peer queue bound to an event nobody handles is a delivery (stored,
    # delivered, acknowledged) paid for nothing on every order.
    unhandled = listed - keys
    assert not unhandled, f"the catalogue binds {sorted(unhandled)} to {service}: no handler"
