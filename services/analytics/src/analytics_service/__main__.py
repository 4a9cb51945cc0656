"""`python -m analytics_service`: serve the analytics service on its host and port."""

from __future__ import annotations

from analytics_service.main import create_app
from analytics_service.settings import AnalyticsSettings
from kit.app import serve


def main() -> None:
    settings = AnalyticsSettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
