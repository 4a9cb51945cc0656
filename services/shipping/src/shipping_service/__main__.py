"""`python -m shipping_service`: serve the shipping service on its host and port."""

from __future__ import annotations

from kit.app import serve
from shipping_service.main import create_app
from shipping_service.settings import ShippingSettings


def main() -> None:
    settings = ShippingSettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
