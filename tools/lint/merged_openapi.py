"""Print the gateway's merged OpenAPI document (`/openapi.json`), built in-process.

Each upstream service's app gives its own document (FastAPI builds it without starting the
app), and the gateway's `merge` joins them to its own, as `MergedOpenAPI` does with the
documents it fetches when every service answers. `make lint` hands the result to Spectral.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

from gateway_service.main import create_app as create_gateway
from gateway_service.openapi import merge
from gateway_service.settings import GatewaySettings


def service_document(service: str) -> dict[str, Any]:
    """The document `service`'s app serves at /openapi.json."""
    main = importlib.import_module(f"{service}_service.main")
    document: dict[str, Any] = main.create_app().openapi()
    return document


def merged_document() -> dict[str, Any]:
    """What the gateway serves at /openapi.json while every service is up."""
    upstreams = GatewaySettings().service_urls()
    base: dict[str, Any] = create_gateway().openapi()
    return merge(base, {service: service_document(service) for service in upstreams})


if __name__ == "__main__":
    json.dump(merged_document(), sys.stdout, indent=1, sort_keys=False)
    sys.stdout.write("\n")
