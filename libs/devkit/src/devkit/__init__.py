"""Development only: what tests, `make run`, the benchmark and the fault suite use, and no service.

The embedded Mongo server (`devkit.embedded_mongo`), the pytest plugin (`devkit.testing`, the
root conftest registers it), broker helpers for tests (`devkit.bus_testing`), test helpers of the
user service and the gateway (`devkit.user_testing`, `devkit.gateway_testing`), the seeders
(`devkit.seed_users`, `devkit.seed_catalogue`: the demo catalogue and bulk loads) and the local
SMTP sink (`devkit.smtp_sink`). A workspace member in the dev dependency group only: no service's
pyproject names it, and the production images (`uv sync --no-dev --package shop-<svc>`) never
install it.
"""
