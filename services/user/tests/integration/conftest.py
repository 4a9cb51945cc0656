"""The user service in-process, on the real broker and Mongo, one database and prefix per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from devkit.user_testing import RunningUser, running_user_service, service_settings


@pytest.fixture
async def user(mongo_url: str, amqp_url: str, run_prefix: str) -> AsyncIterator[RunningUser]:
    settings = service_settings(
        mongo_url,
        amqp_url,
        run_prefix,
        admin_email="root@example.com",
        admin_password="admin-password-1",
        lockout_seconds=2,
    )
    async with running_user_service(settings) as running:
        yield running
