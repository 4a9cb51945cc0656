"""Settings of the gateway: where each service answers, and the proxy's limits (`GATEWAY_`)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from kit.settings import ServiceSettings, split_csv


class GatewaySettings(ServiceSettings):
    """The gateway's settings (`GATEWAY_PORT`, `GATEWAY_USER_URL`, …)."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_")

    service_name: ClassVar[str] = "gateway"
    port: int = 8000

    user_url: str = "http://127.0.0.1:8001"
    inventory_url: str = "http://127.0.0.1:8002"
    order_url: str = "http://127.0.0.1:8003"
    payment_url: str = "http://127.0.0.1:8004"
    notify_url: str = "http://127.0.0.1:8005"
    analytics_url: str = "http://127.0.0.1:8006"
    shipping_url: str = "http://127.0.0.1:8007"

    # Proxy (request bodies above the shared MAX_BODY_BYTES, 1 MiB, answer 413).
    connect_timeout: float = 2.0
    read_timeout: float = 15.0
    max_connections: int = 200
    max_keepalive_connections: int = 50

    # /readyz asks every service; one that does not answer this fast counts as not ready.
    readiness_timeout: float = 1.5
    openapi_cache_seconds: float = 5.0
    openapi_fetch_timeout: float = 2.0

    # Strict-Transport-Security on every response (GATEWAY_HSTS): only when clients reach the
    # gateway over TLS (it terminates TLS, or a TLS proxy in front forwards to it). Over plain
    # HTTP in local mode the header would be ignored at best.
    hsts: bool = False

    # Peers whose `Forwarded` / `X-Forwarded-For` is believed (GATEWAY_TRUSTED_PROXIES, CIDRs,
    # comma-separated): only the load balancers really in front of the gateway. Empty: the TCP
    # peer is the client (kit.request_context.client_ip).
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = ()

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _cidrs(cls, value: Any) -> Any:
        value = split_csv(value)
        for entry in value:
            ipaddress.ip_network(entry, strict=False)  # a typo fails at start-up, not silently
        return value

    # The built web front end (`web/dist`) served at `/` (GATEWAY_WEB_DIR); None: API only.
    web_dir: Path | None = None

    def service_urls(self) -> dict[str, str]:
        """{service name: base URL} of every upstream."""
        return {
            "user": self.user_url,
            "inventory": self.inventory_url,
            "order": self.order_url,
            "payment": self.payment_url,
            "notify": self.notify_url,
            "analytics": self.analytics_url,
            "shipping": self.shipping_url,
        }
