"""`python -m user_service`: serve the user service on its host and port."""

from __future__ import annotations

from kit.app import serve
from user_service.main import create_app
from user_service.settings import UserSettings


def main() -> None:
    settings = UserSettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
