"""`python -m inventory_service`: serve the inventory service on its host and port."""

from __future__ import annotations

from inventory_service.main import create_app
from inventory_service.settings import InventorySettings
from kit.app import serve


def main() -> None:
    settings = InventorySettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
