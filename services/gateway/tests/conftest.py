"""A real uvicorn server per app, on a free port, inside the test's event loop."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import pytest
from gateway_service.testing import serving
from starlette.types import ASGIApp

type Serve = Callable[[ASGIApp], AbstractAsyncContextManager[str]]


@pytest.fixture
def serve() -> Serve:
    return serving
