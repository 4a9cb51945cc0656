"""What every service process does the same way.

`ServiceDeps.wire` (Mongo client, the service's database, `bus.ServiceBus`) for each service's
`bootstrap`, and `service_lifespan` (connect Mongo, ensure indexes, start the bus, register the
`mongo` and `broker` readiness checks, stop cleanly). Services keep only what differs: their
settings class, handler table, indexes and routes.

SHORTCUT: this belongs in `libs/kit` (the lifespan) and `libs/bus` (the wiring); it lives here,
under `services/`, until those libraries take it over.
"""

from service_runtime.lifespan import Bus, ServiceDeps, bus_config, service_lifespan

__all__ = ["Bus", "ServiceDeps", "bus_config", "service_lifespan"]
