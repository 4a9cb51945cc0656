"""The shop as separate processes that the fault suite can kill and start one by one.

Each service is started with the command and environment `scripts/run_local.py` gives it
(`python -m <name>_service`, `runner.config.child_env`), on a free block of ports, with an
embedded Mongo of its own, its own `BUS_PREFIX`, `DB_PREFIX` and run directory. Unlike the runner,
nothing restarts a dead child on its own: the suite decides when (and with which environment) a
service comes back. Output goes to `<run dir>/logs/<name>.log`.

The broker is a RabbitMQ node of the system's own (`devkit.rabbit_node`, started by `up()` and
stopped by `down()`), so that the suite may restart it without touching the machine's shared
broker; `CHAOS_SHARED_BROKER=1` (or a machine without the server's scripts) keeps the URL given,
and the broker-restart fault then refuses to run. Every bus service gets an embedded Mongo of its
own (`mongo-<name>`), as `make run` gives it (`SHOP_MONGO_PER_SERVICE`, on by default): one shared
server made six services' transactions conflict with each other (the embedded server fails any
two overlapping ones; the serial transactions only order a process's own) and made one Python
process the store of the whole shop, so that under 200 orders in flight order's placements waited
past the gateway's 15 s before any fault. The store-stall fault freezes one of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from bus import BusConfig, BusConnection, delete_topology
from devkit import rabbit_node
from devkit.bus_testing import broker_connections, close_broker_connection
from devkit.rabbit_node import RabbitNode
from kit.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from runner.config import (  # noqa: E402
    SERVICE_NAMES,
    SERVICES,
    child_env,
    free_port_block,
    parse_args,
)

BUS_SERVICES = tuple(n for n in SERVICE_NAMES if n != "gateway")
ADMIN = ("chaos-admin@example.com", "chaos-admin-password-1")
MANAGER = ("chaos-manager@example.com", "chaos-manager-password-1")
APPROVAL_THRESHOLD_CENTS = 100_000
# Services whose store is an embedded server of their own: every one with a store (the gateway
# has none), as `make run` does.
OWN_MONGO = BUS_SERVICES

# Windows shorter than production's (15 min each) so that an order whose saga broke still ends
# within the run, yet long enough for the load: the driver answers every wait, so no order of a
# sound shop waits a window out. By Little's law an order spends in flight / throughput in the
# shop: 200 in flight at the 2-core machine's 3-5 orders/s (bench/README.md) is 40-70 s on
# average and more across a fault, which the former 40 s hold did not outlast (89 of 488 orders,
# the happy branch's too, CANCELLED COMMIT_FAILED: their holds expired before payment), nor 15 s
# windows the saga's own queues. The hold outlasts the windows an order can wait in, in turn
# (approval, decision, payment), and the queueing on top. (At 90 s, 2 of 621 orders still waited
# a payment window out at 184 in flight: the saga's queues after the inventory outage.) The long
# form's customers and managers take 100 s over a wait (`suite.LOAD`), then answer within a
# sweep or two, retried when the shop does not answer: 240 s.
WINDOW_SECONDS = 240
DEADLINES = {
    "ORDER_DECISION_WINDOW_SECONDS": str(WINDOW_SECONDS),
    "ORDER_PAYMENT_WINDOW_SECONDS": str(WINDOW_SECONDS),
    "ORDER_APPROVAL_WINDOW_SECONDS": str(WINDOW_SECONDS),
    # A paid order waits for inventory's commit across the 60 s inventory outage and its backlog.
    "ORDER_COMMIT_WINDOW_SECONDS": str(2 * WINDOW_SECONDS),
    "ORDER_SWEEP_INTERVAL_SECONDS": "1",
    "ORDER_SWEEP_LEASE_SECONDS": "5",
    "INVENTORY_RESERVATION_TTL_SECONDS": str(4 * WINDOW_SECONDS),
    "INVENTORY_SWEEP_INTERVAL_SECONDS": "1",
    "INVENTORY_SWEEP_LEASE_SECONDS": "5",
}


@dataclass
class System:
    run_dir: Path
    amqp_url: str
    prefix: str = field(default_factory=lambda: f"chaos{secrets.token_hex(3)}.")
    db_prefix: str = field(default_factory=lambda: f"chaos{secrets.token_hex(3)}_")
    base: int = field(default_factory=free_port_block)
    mongo_url: str = ""  # any one of them, for the processes that use none (gateway)
    mongo_urls: dict[str, str] = field(default_factory=dict)  # OWN_MONGO's servers
    node: RabbitNode | None = None  # the dedicated broker node, when there is one
    broker_note: str = ""
    dedicated_broker: bool = False
    env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)
    _logs: dict[str, IO[bytes]] = field(default_factory=dict)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.base + dict(SERVICES)[name]}"

    @property
    def gateway(self) -> str:
        return self.url("gateway")

    # --- processes --------------------------------------------------------------------------

    def _log(self, name: str) -> IO[bytes]:
        if name not in self._logs:
            (self.run_dir / "logs").mkdir(parents=True, exist_ok=True)
            self._logs[name] = (self.run_dir / "logs" / f"{name}.log").open("ab")
        return self._logs[name]

    def mongo_url_of(self, service: str) -> str:
        """The URL of `service`'s own embedded server."""
        return self.mongo_urls[service]

    def spawn_mongo(self, name: str) -> None:
        """Start an embedded Mongo as the process `name` (`ready_mongo` waits for it)."""
        argv = [sys.executable, "-m", "devkit.embedded_mongo", "--port", "0"]
        process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.processes[name] = process

    def ready_mongo(self, name: str) -> str:
        """The URL the embedded Mongo `name` announces once it serves; its output then goes to
        its log."""
        process = self.processes[name]
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        url = ""
        while time.monotonic() < deadline:
            line = process.stdout.readline().decode()
            if line.startswith("READY "):
                url = line.removeprefix("READY ").strip()
                break
            if not line and process.poll() is not None:
                break
        if not url:
            raise RuntimeError(f"the embedded Mongo {name} did not start")
        log = self._log(name)
        out = process.stdout

        def drain() -> None:
            for chunk in iter(lambda: out.readline(), b""):
                log.write(chunk)

        threading.Thread(target=drain, daemon=True).start()
        return url

    async def start_broker(self) -> None:
        """A broker node of the system's own, unless told to share the machine's."""
        if os.environ.get("CHAOS_SHARED_BROKER") == "1":
            self.broker_note = "shared broker (CHAOS_SHARED_BROKER=1): no broker restart"
            return
        if not rabbit_node.available():
            self.broker_note = "no rabbitmq-server here: shared broker, no broker restart"
            return
        self.node = await RabbitNode.start(prefix="shopchaos")
        self.amqp_url = self.node.amqp_url
        self.dedicated_broker = True
        self.broker_note = f"dedicated node {self.node.name} on port {self.node.port}"

    def prepare_env(self, extra: dict[str, str] | None = None) -> None:
        runner_env = {
            "SHOP_PORT_BASE": str(self.base),
            "SHOP_RUN_DIR": str(self.run_dir),
            "AMQP_URL": self.amqp_url,
            "MONGO_URL": self.mongo_url,
        }
        config = parse_args([], env=runner_env)
        env = child_env(config, self.mongo_url)
        env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
        env.update(
            BUS_PREFIX=self.prefix,
            DB_PREFIX=self.db_prefix,
            SHOP_ENV="dev",
            LOG_FORMAT="console",
            LOG_LEVEL="WARNING",
            SHOP_ADMIN_EMAIL=ADMIN[0],
            SHOP_ADMIN_PASSWORD=ADMIN[1],
            SHOP_MANAGER_EMAIL=MANAGER[0],
            SHOP_MANAGER_PASSWORD=MANAGER[1],
            APPROVAL_THRESHOLD_CENTS=str(APPROVAL_THRESHOLD_CENTS),
            # Retries spread over ~50 s: the embedded Mongo fails any two overlapping write
            # transactions (bus README, known limits), which a loaded 2-core machine makes common.
            BUS_RETRY_DELAYS="1,5,15",
            BUS_MAX_ATTEMPTS="6",
            # As the runner does on the embedded server (runner.config.child_env): each service
            # runs its write transactions one at a time (the server conflicts overlapping ones).
            MONGO_SERIAL_TRANSACTIONS="1",
            # The gateway's rate limits are not what this suite measures.
            GATEWAY_IP_RATE_LIMIT="1000000",
            **DEADLINES,
        )
        env.pop("BUS_CRASH_AT", None)
        (self.run_dir / "keys").mkdir(parents=True, exist_ok=True)
        self.env = env | (extra or {})

    def start(self, name: str, extra: dict[str, str] | None = None) -> None:
        """Start one service (or the SMTP sink) as `run_local.py` would."""
        if name == "smtp-sink":
            argv = [
                sys.executable,
                "-m",
                "devkit.smtp_sink",
                "--port",
                self.env["NOTIFY_SMTP_PORT"],
                "--dir",
                str(self.run_dir / "mail"),
            ]
        else:
            argv = [sys.executable, "-m", f"{name}_service"]
        if name in self.mongo_urls:
            extra = {"MONGO_URL": self.mongo_urls[name]} | (extra or {})
        log = self._log(name)
        log.write(f"--- start {name} {sorted((extra or {}).items())}\n".encode())
        log.flush()
        self.processes[name] = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=self.env | (extra or {}),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self, name: str) -> None:
        """SIGKILL, as the kernel's OOM killer or a node failure would."""
        process = self.processes[name]
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGKILL)
        process.wait()

    def alive(self, name: str) -> bool:
        return self.processes[name].poll() is None

    async def restart(self, name: str, extra: dict[str, str] | None = None) -> float:
        """Start a (dead) service again; seconds until it answers ready."""
        if self.alive(name):
            self.kill(name)
        started = time.monotonic()
        self.start(name, extra)
        self.restarts[name] = self.restarts.get(name, 0) + 1
        await self.wait_ready([name])
        return time.monotonic() - started

    async def wait_ready(
        self, names: list[str] | tuple[str, ...], timeout: float = 90.0, path: str = "/readyz"
    ) -> None:
        deadline = time.monotonic() + timeout
        pending = list(names)
        async with httpx.AsyncClient(timeout=3) as client:
            while pending:
                name = pending[0]
                probe = "/healthz" if name == "gateway" else path
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(self.url(name) + probe)).status_code == 200:
                        pending.pop(0)
                        continue
                if not self.alive(name):
                    raise RuntimeError(f"{name} exited: see {self.run_dir}/logs/{name}.log")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name} not ready after {timeout:g}s")
                await asyncio.sleep(0.3)

    async def up(self) -> None:
        await self.start_broker()
        # Started together: each takes seconds to import and bind on a loaded machine.
        for name in OWN_MONGO:
            self.spawn_mongo(f"mongo-{name}")
        for name in OWN_MONGO:
            self.mongo_urls[name] = await asyncio.to_thread(self.ready_mongo, f"mongo-{name}")
        self.mongo_url = self.mongo_urls[OWN_MONGO[0]]
        self.prepare_env()
        self.start("smtp-sink")
        # Notify and analytics first: their queues must exist before the user service announces
        # the bootstrap accounts (notify keeps a replica of the Managers).
        # Serving is enough here (their lifespan declared the queues): they are ready only once
        # the user service answers their revocation feed (kit.auth.revocation).
        for name in ("notify", "analytics"):
            self.start(name)
        await self.wait_ready(["notify", "analytics"], path="/healthz")
        for name in ("user", "inventory", "order", "payment", "shipping"):
            self.start(name)
        await self.wait_ready(
            ["user", "inventory", "order", "payment", "shipping", "notify", "analytics"]
        )
        self.start("gateway")
        await self.wait_ready(["gateway"])

    def down(self) -> None:
        order = [
            "gateway",
            *BUS_SERVICES,
            "smtp-sink",
            *(f"mongo-{name}" for name in OWN_MONGO),
        ]
        for name in order:
            process = self.processes.get(name)
            if name.startswith("mongo") and process is not None and process.poll() is None:
                # A store left frozen by a fault that failed half-way would never stop.
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGCONT)
        for name in order:
            process = self.processes.get(name)
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for name in order:
            process = self.processes.get(name)
            if process is None:
                continue
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in self._logs.values():
            log.close()
        if self.node is not None:
            node, self.node = self.node, None
            if _loop_running():
                _stop_node_blocking(node)
            else:
                asyncio.run(node.stop())

    async def delete_broker_state(self) -> None:
        if self.dedicated_broker:
            return  # the dedicated node went with its state (`down`)
        connection = BusConnection(self.amqp_url, name=f"{self.prefix}chaos-cleanup")
        delays = ServiceSettings(BUS_RETRY_DELAYS=self.env["BUS_RETRY_DELAYS"]).bus_retry_delays  # type: ignore[call-arg]
        try:
            channel = await connection.channel()
            for service in BUS_SERVICES:
                config = BusConfig(service=service, prefix=self.prefix, retry_delays=delays)
                await delete_topology(channel, config, exchanges=service == "user")
        finally:
            await connection.close()

    def bus_config(self, service: str = "chaos") -> BusConfig:
        return BusConfig(service=service, amqp_url=self.amqp_url, prefix=self.prefix)

    def database(self, service: str) -> str:
        return f"{self.db_prefix}{service}"


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _stop_node_blocking(node: RabbitNode) -> None:
    """Stop the node from synchronous code that an event loop is running (`down`)."""
    result: list[BaseException] = []

    def stop() -> None:
        try:
            asyncio.run(node.stop())
        except BaseException as exc:  # noqa: BLE001 - reported below
            result.append(exc)

    thread = threading.Thread(target=stop)
    thread.start()
    thread.join(90)
    if result:
        raise result[0]


async def close_connections(
    prefix: str, keep: tuple[str, ...] = (), *, node: RabbitNode | None = None
) -> list[str]:
    """Make the broker close the system's own connections (never anyone else's)."""
    closed: list[str] = []
    for pid, name in await broker_connections(prefix, node=node):
        if any(k in name for k in keep):
            continue
        if await close_broker_connection(pid, "chaos: broker dropped the connection", node=node):
            closed.append(name)
    return closed


def environment_note() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
