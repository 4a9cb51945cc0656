"""`python -m gateway_service`: serve the gateway service on its host and port."""

from __future__ import annotations

from gateway_service.main import create_app
from gateway_service.settings import GatewaySettings
from kit.app import serve


def main() -> None:
    settings = GatewaySettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
