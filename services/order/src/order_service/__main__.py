"""`python -m order_service`: serve the order service on its host and port."""

from __future__ import annotations

from kit.app import serve
from order_service.main import create_app
from order_service.settings import OrderSettings


def main() -> None:
    settings = OrderSettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
