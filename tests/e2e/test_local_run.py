"""`make run` works: the runner brings up every service behind the gateway and stops them all.

The runner is started as `make run` starts it (`python scripts/run_local.py`), on a free block of
seven ports (`SHOP_PORT_BASE`), with its own embedded Mongo on a free port, its own broker name
prefix and its own run directory, so it can run next to a developer's `make run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import secrets
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from bus import BusConfig, BusConnection, delete_topology
from kit.settings import ServiceSettings

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from runner.config import free_port_block  # noqa: E402

SERVICES = {"gateway", "user", "inventory", "order", "payment", "notify", "analytics", "shipping"}
BUS_SERVICES = SERVICES - {"gateway"}
READY_TIMEOUT = 120.0


def process_state(pid: int) -> str | None:
    """The /proc state letter of `pid` (`Z` for a zombie), None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def descendants(root: int) -> set[int]:
    """Every process below `root`, from /proc (children of children included)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found


def kill_tree(process: subprocess.Popen[str]) -> None:
    """SIGKILL the runner and everything it started, children of children included."""
    for pid in descendants(process.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.kill()
    process.wait()


@dataclass
class Runner:
    process: subprocess.Popen[str]
    base: int
    lines: list[str] = field(default_factory=list)
    _queue: queue.Queue[str | None] = field(default_factory=queue.Queue)

    def __post_init__(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float) -> str:
        """The first output line containing `text`; fails with the output so far."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                break
            self.lines.append(line)
            if text in line:
                return line
        tail = "\n".join(self.lines[-60:])
        pytest.fail(f"runner never printed {text!r}; last output:\n{tail}")

    def drain(self) -> None:
        while (line := self._queue.get(timeout=10)) is not None:
            self.lines.append(line)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.base}"


def delete_broker_state(amqp_url: str, prefix: str) -> None:
    """Delete the queues and exchanges the run declared under its prefix."""

    async def delete() -> None:
        connection = BusConnection(amqp_url, name=f"{prefix}cleanup")
        delays = ServiceSettings().bus_retry_delays  # as the services named their delay queues
        try:
            channel = await connection.channel()
            for service in sorted(BUS_SERVICES):
                config = BusConfig(service=service, prefix=prefix, retry_delays=delays)
                await delete_topology(channel, config, exchanges=service == "user")
        finally:
            await connection.close()

    asyncio.run(delete())


@pytest.fixture
def runner(tmp_path: Path, amqp_url: str) -> Iterator[Runner]:
    base = free_port_block()
    prefix = f"e2e{secrets.token_hex(3)}."
    # No MONGO_URL (the runner's own embedded Mongo) and no bootstrap accounts (it makes them).
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "MONGO_URL" and not k.startswith(("SHOP_ADMIN_", "SHOP_MANAGER_"))
    }
    env.update(
        SHOP_PORT_BASE=str(base),
        SHOP_MONGO_PORT="0",
        SHOP_RUN_DIR=str(tmp_path / "run"),
        AMQP_URL=amqp_url,
        BUS_PREFIX=prefix,
        DB_PREFIX=f"e2e{secrets.token_hex(3)}_",
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
        yield run
    finally:
        if process.poll() is None:
            kill_tree(process)
        delete_broker_state(amqp_url, prefix)


def started_pids(lines: list[str]) -> dict[str, int]:
    """{name: pid} from the runner's `started <name> (pid N)` lines (the latest one wins)."""
    pids: dict[str, int] = {}
    for line in lines:
        if "| started " in line and "(pid " in line:
            name = line.split("| started ", 1)[1].split(" ", 1)[0]
            pids[name] = int(line.rsplit("pid ", 1)[1].rstrip(")"))
    return pids


def printed_account(lines: list[str], role: str) -> tuple[str, str]:
    """(email, password) of `role` from the runner's banner (`  Manager  <email>  <password>`)."""
    for line in lines:
        words = line.split("| ", 1)[-1].split()
        if len(words) == 3 and words[0] == role:
            return words[1], words[2]
    pytest.fail(f"the runner printed no {role} account")


def wait_until_ready(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=3).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    pytest.fail(f"{url}/readyz did not become 200 within {timeout}s")


def test_make_run_serves_everything_and_stops_cleanly(runner: Runner, tmp_path: Path) -> None:
    runner.wait_for("ready in", READY_TIMEOUT + 10)

    with httpx.Client(base_url=runner.url, timeout=10) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        body = ready.json()
        assert body["status"] == "ready"
        assert set(body["services"]) == SERVICES
        assert set(body["services"].values()) == {"ready"}

        openapi = client.get("/openapi.json")
        assert openapi.status_code == 200
        assert "/api/v1/users/.well-known/jwks.json" in openapi.json()["paths"]

        jwks = client.get("/api/v1/users/.well-known/jwks.json")
        assert jwks.status_code == 200
        assert jwks.json()["keys"], "the user service publishes a signing key"
        assert jwks.headers["x-request-id"]

        nope = client.get("/api/v1/nope")
        assert nope.status_code == 404
        assert nope.headers["content-type"].startswith("application/problem+json")
        assert nope.json()["code"] == "NOT_FOUND"

        assert client.get("/docs").status_code == 200

        # The demo catalogue: seeded by the runner (devkit.seed_catalogue), not by inventory.
        books = client.get("/api/v1/products", params={"category": "books"})
        assert books.status_code == 200, books.text
        assert "Refactoring" in {p["name"] for p in books.json()["items"]}
    assert any("demo catalogue: 30 products added" in line for line in runner.lines)

    # A newcomer gets an Admin and a Manager: printed once up, kept owner-only under the run
    # directory, and the printed Manager password signs in as a Manager.
    runner.wait_for("kept in", 5)
    admin = printed_account(runner.lines, "Admin")
    email, password = printed_account(runner.lines, "Manager")
    kept = tmp_path / "run" / "accounts.env"  # the fixture's SHOP_RUN_DIR
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert f"SHOP_MANAGER_PASSWORD={password}" in kept.read_text()
    with httpx.Client(base_url=runner.url, timeout=10) as client:
        login = client.post("/api/v1/users/login", json={"identifier": email, "password": password})
        assert login.status_code == 200, login.text
        token = login.json()["accessToken"]
        me = client.get("/api/v1/users/me", headers={"authorization": f"Bearer {token}"})
        assert me.status_code == 200, me.text
        assert me.json()["role"] == "Manager"

    started = started_pids(runner.lines)
    # One embedded Mongo per service (the runner's default), named after it.
    mongos = {f"mongo-{name}" for name in SERVICES if name != "gateway"}
    assert set(started) == {*SERVICES, *mongos, "smtp-sink"}
    assert set(started.values()) <= descendants(runner.process.pid)

    # The supervisor restarts a child that dies, and the system becomes ready again.
    os.kill(started["order"], signal.SIGKILL)
    runner.wait_for("started order", 30)
    restarted = started_pids(runner.lines)["order"]
    assert restarted != started["order"]
    wait_until_ready(runner.url, 60)

    children = descendants(runner.process.pid)
    assert restarted in children
    runner.process.send_signal(signal.SIGTERM)
    assert runner.process.wait(timeout=60) == 0
    runner.drain()
    for secret in (admin[1], password):  # no child logged them: only the banner's one line
        assert sum(secret in line for line in runner.lines) == 1
    deadline = time.monotonic() + 10
    alive = children
    while alive and time.monotonic() < deadline:
        alive = {pid for pid in alive if process_state(pid) not in (None, "Z")}
        time.sleep(0.2)
    assert not alive, f"processes left after SIGTERM: {sorted(alive)}"
