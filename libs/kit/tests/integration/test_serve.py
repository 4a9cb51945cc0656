"""How kit serves a service: uvicorn with kit's options (`kit.app.server_options`)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import ClassVar

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from devkit.testing import free_port, serving_config
from kit.app import server_options
from kit.settings import ServiceSettings

pytestmark = pytest.mark.integration


class ProbeSettings(ServiceSettings):
    service_name: ClassVar[str] = "probe"


def probe_app() -> FastAPI:
    app = FastAPI()

    @app.get("/things")
    async def things() -> dict[str, int]:
        return {"n": 1}

    return app


@asynccontextmanager
async def served(settings: ServiceSettings) -> AsyncIterator[str]:
    """`probe_app` under uvicorn with the service options of `settings`, in this loop."""
    options = server_options(settings) | {"port": free_port()}
    options.pop("loop", None)  # the test's own loop runs it
    async with serving_config(uvicorn.Config(probe_app(), **options)) as url:
        yield url


async def access_lines(settings: ServiceSettings, caplog: pytest.LogCaptureFixture) -> int:
    """uvicorn's access lines for one request served with the options of `settings`."""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        async with served(settings) as url, httpx.AsyncClient() as client:
            assert (await client.get(f"{url}/things")).status_code == 200
    return sum(1 for record in caplog.records if record.name == "uvicorn.access")


async def test_access_lines_follow_the_access_log_setting(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert await access_lines(ProbeSettings(env="dev"), caplog) == 1
    assert await access_lines(ProbeSettings(env="dev", access_log=False), caplog) == 0


CHILD = """
import asyncio, os, sys
from contextlib import asynccontextmanager
from fastapi import FastAPI
from kit.app import serve
from kit.settings import ServiceSettings

class ProbeSettings(ServiceSettings):
    service_name = "probe"

@asynccontextmanager
async def lifespan(app):
    print("LOOP", type(asyncio.get_running_loop()).__module__, flush=True)
    raise RuntimeError("stop here")
    yield

serve(FastAPI(lifespan=lifespan), ProbeSettings(port=int(sys.argv[1])))
"""


def test_a_service_runs_on_uvloop_and_a_failed_start_exits_the_process() -> None:
    import subprocess
    import sys

    env = {"SHOP_ENV": "test", "LOG_LEVEL": "WARNING", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "LOOP uvloop" in result.stdout, result.stdout + result.stderr
    assert result.returncode != 0  # a supervisor sees a start-up that failed


def test_services_keep_idle_connections_longer_than_their_clients() -> None:
    """A client must drop an idle connection before the server closes it; with both at 5 s the
    gateway sometimes sent a request on a connection uvicorn was closing (a 502 under load)."""
    client_expiry = httpx.Limits().keepalive_expiry
    assert client_expiry is not None
    keep_alive = server_options(ServiceSettings(service_name="probe"))["timeout_keep_alive"]
    assert keep_alive >= 2 * client_expiry
