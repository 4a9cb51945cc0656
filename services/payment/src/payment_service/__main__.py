"""`python -m payment_service`: serve the payment service on its host and port."""

from __future__ import annotations

from kit.app import serve
from payment_service.main import create_app
from payment_service.settings import PaymentSettings


def main() -> None:
    settings = PaymentSettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
