"""The whole system as `make run` starts it, and Debian's Chromium driven by Playwright.

One runner per session (scripts/run_local.py on its own block of ports, its own embedded Mongo,
its own broker prefix and run directory, bootstrap Admin and Manager), serving the web app built
into web/dist (`make test` builds it first: scripts/build-web.sh). One Chromium per session, with
a fresh user-data-dir; each test opens its own tab, and the app keeps its session per tab
(sessionStorage), so tabs never share a signed-in user.

Screenshots of every main screen go to tests/reports/web/ (git-ignored; regenerated each run).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, sync_playwright

from tests.e2e.test_local_run import Runner, delete_broker_state, free_port_block, kill_tree
from tests.web.shopweb import (
    ADMIN,
    CHROMIUM,
    CHROMIUM_FLAGS,
    DIST,
    MANAGER,
    REPORTS,
    ROOT,
    System,
)

READY_TIMEOUT = 90.0


@pytest.fixture(scope="session")
def system(tmp_path_factory: pytest.TempPathFactory, amqp_url: str) -> Iterator[System]:
    assert (DIST / "index.html").is_file(), "web/dist is not built: run `make web` (make test does)"
    base = free_port_block()
    prefix = f"web{secrets.token_hex(3)}."
    env = {k: v for k, v in os.environ.items() if k != "MONGO_URL"}
    env.update(
        SHOP_PORT_BASE=str(base),
        SHOP_MONGO_PORT="0",
        SHOP_RUN_DIR=str(tmp_path_factory.mktemp("web-run")),
        AMQP_URL=amqp_url,
        BUS_PREFIX=prefix,
        DB_PREFIX=f"web{secrets.token_hex(3)}_",
        GATEWAY_WEB_DIR=str(DIST),
        SHOP_ADMIN_EMAIL=ADMIN[0],
        SHOP_ADMIN_PASSWORD=ADMIN[1],
        SHOP_MANAGER_EMAIL=MANAGER[0],
        SHOP_MANAGER_PASSWORD=MANAGER[1],
        NO_COLOR="1",
        PYTHONUNBUFFERED="1",
    )
    process = subprocess.Popen(
        [sys.executable, "scripts/run_local.py", "--ready-timeout", str(READY_TIMEOUT)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    run = Runner(process, base)
    try:
        run.wait_for("ready in", READY_TIMEOUT + 10)
        system = System(run.url)
        yield system
        system.http.close()
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                kill_tree(process)
        # In a thread of its own: Playwright's sync API keeps an event loop on this one.
        cleanup = threading.Thread(target=delete_broker_state, args=(amqp_url, prefix))
        cleanup.start()
        cleanup.join(60)


@pytest.fixture(scope="session")
def browser_context(
    tmp_path_factory: pytest.TempPathFactory, system: System
) -> Iterator[BrowserContext]:
    """Chromium, started after the system and closed before it stops."""
    assert Path(CHROMIUM).exists(), "Chromium is missing: run `make browser` (make test does)"
    shutil.rmtree(REPORTS, ignore_errors=True)  # this run's screenshots only
    REPORTS.mkdir(parents=True)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        context.set_default_timeout(15_000)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser_context: BrowserContext) -> Iterator[Page]:
    """A fresh tab (its own sessionStorage: its own signed-in user); fails on a script error or
    on anything the Content-Security-Policy blocked."""
    tab = browser_context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    # The gateway's Content-Security-Policy must not have to block anything the app does.
    tab.on(
        "console",
        lambda message: (
            errors.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    try:
        yield tab
    finally:
        tab.close()
    assert not errors, f"script errors in the page: {errors}"
