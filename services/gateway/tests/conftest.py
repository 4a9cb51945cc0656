"""A real uvicorn server per app, on a free port, inside the test's event loop."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import pytest
from starlette.types import ASGIApp

from devkit.gateway_testing import serving

type Serve = Callable[[ASGIApp], AbstractAsyncContextManager[str]]


@pytest.fixture
def serve() -> Serve:
    return serving
