"""`python -m notify_service`: serve the notify service on its host and port."""

from __future__ import annotations

from kit.app import serve
from notify_service.main import create_app
from notify_service.settings import NotifySettings


def main() -> None:
    settings = NotifySettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
