"""The shop as `make run` starts it, on a port block, broker prefix and run directory of its own.

The runner (`scripts/run_local.py`) starts its own embedded Mongo (`SHOP_MONGO_PORT=0`), the one of
`bench.counting_mongo` (`SHOP_MONGO_MODULE`: it counts the commands it receives); its output goes
to `<run dir>/runner.log`. Service processes are found below the runner with psutil, named by
their `-m <name>_service` command line (replicas share the name).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psutil

from bus import BusConfig, BusConnection, delete_topology
from kit.settings import ServiceSettings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from runner.config import SERVICE_NAMES, free_port_block  # noqa: E402

from bench.stats import FULFILMENT  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MONGO_MODULE = "bench.counting_mongo"  # devkit.embedded_mongo, counting commands
BUS_SERVICES = ("user", "inventory", "order", "payment", "shipping", "notify", "analytics")
ADMIN_EMAIL = "bench-admin@example.com"
ADMIN_PASSWORD = "bench-admin-password-1"
# Preparation only: argon2 at OWASP's minimum cost (the measured path hashes no password). The
# growth step's seeded users share one hash made with these same parameters.
ARGON2 = {"time_cost": 2, "memory_kib": 19 * 1024, "parallelism": 1}


def service_of(process: psutil.Process) -> str | None:
    """`order` for `python -m order_service`, `mongo` for the embedded server, else None."""
    try:
        argv = process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    if "-m" in argv:
        module = argv[argv.index("-m") + 1] if argv.index("-m") + 1 < len(argv) else ""
        if module in ("devkit.embedded_mongo", MONGO_MODULE):
            return "mongo"  # one server, or (SHOP_MONGO_PER_SERVICE) all of them summed
        if module.endswith("_service"):
            return module.removesuffix("_service")
        if module == "devkit.smtp_sink":
            return "smtp-sink"
    return None


@dataclass
class System:
    process: subprocess.Popen[bytes]
    base: int
    prefix: str
    run_dir: Path
    amqp_url: str
    replicas: dict[str, int]
    mongo_per_service: bool = False
    mongo_urls: dict[str, str] = field(default_factory=dict)  # "" → the shared server
    started_at: float = field(default_factory=time.monotonic)
    db_prefix: str = ""  # DB_PREFIX of the services (the bench clears it: database = service)
    services: tuple[str, ...] = SERVICE_NAMES  # the services the runner started (`--only`)
    _mongo_pids: dict[str, int] = field(default_factory=dict)

    def mongo_url_of(self, service: str) -> str:
        """The server holding `service`'s database: its own, or the shared one."""
        return self.mongo_urls.get(service) or self.mongo_urls.get("") or self.mongo_url

    @property
    def mongo_url(self) -> str:
        """The shared server, or the order service's own (where the substrate is measured)."""
        return self.mongo_urls.get("", self.mongo_urls.get("order", ""))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.base}"

    @property
    def log(self) -> Path:
        return self.run_dir / "runner.log"

    def processes(self) -> dict[str, list[psutil.Process]]:
        """{service (or mongo): its processes} below the runner."""
        found: dict[str, list[psutil.Process]] = {}
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return found
        for child in children:
            name = service_of(child)
            if name is not None:
                found.setdefault(name, []).append(child)
        return found

    def mongo_processes(self) -> dict[str, psutil.Process]:
        """{server: its process}, server = the service owning it ("" for a shared one), told
        apart by the port each listens on (the runner starts them all with `--port 0`)."""
        mongos = self.processes().get("mongo", [])
        if len(self._mongo_pids) < len(self.mongo_urls):
            ports = {urlsplit(url).port: server for server, url in self.mongo_urls.items()}
            for process in mongos:
                try:
                    listening = process.net_connections(kind="tcp")
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                for connection in listening:
                    server = ports.get(connection.laddr.port)
                    if connection.status == psutil.CONN_LISTEN and server is not None:
                        self._mongo_pids[server] = process.pid
        by_pid = {process.pid: process for process in mongos}
        return {server: by_pid[pid] for server, pid in self._mongo_pids.items() if pid in by_pid}

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_for_line(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            text = self.log.read_text(errors="replace") if self.log.exists() else ""
            found = regex.search(text)
            if found:
                return found
            if self.process.poll() is not None:
                break
            time.sleep(0.25)
        tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])
        raise RuntimeError(f"the runner never printed {pattern!r}; last output:\n{tail}")

    def stop(self) -> None:
        """SIGTERM the runner (it stops its children in order); SIGKILL whatever is left."""
        try:
            descendants = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            descendants = []
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for child in descendants:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        asyncio.run(delete_broker_state(self.amqp_url, self.prefix))


async def delete_broker_state(amqp_url: str, prefix: str) -> None:
    """Delete the queues and exchanges the run declared under its prefix."""
    connection = BusConnection(amqp_url, name=f"{prefix}cleanup")
    delays = ServiceSettings().bus_retry_delays  # as the services named their delay queues
    try:
        channel = await connection.channel()
        for service in BUS_SERVICES:
            config = BusConfig(service=service, prefix=prefix, retry_delays=delays)
            with contextlib.suppress(Exception):
                await delete_topology(channel, config, exchanges=service == "user")
    finally:
        await connection.close()


def start_system(
    run_dir: Path,
    amqp_url: str,
    replicas: dict[str, int] | None = None,
    *,
    mongo_per_service: bool = False,
    serial_transactions: bool = False,
    fulfilment: bool = False,
    timeout: float = 180,
) -> System:
    """Start the runner and wait until every service it started is ready. Without `fulfilment`
    the shipping service is not started: the checkout's figures leave fulfilment out (no
    shipment is made; OrderConfirmed waits in shipping's queue, deleted with the run's)."""
    replicas = replicas or {}
    base = free_port_block()
    prefix = f"bench{secrets.token_hex(3)}."
    run_dir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("MONGO_URL", "DB_PREFIX")}
    env.update(
        SHOP_PORT_BASE=str(base),
        SHOP_MONGO_PORT="0",
        SHOP_RUN_DIR=str(run_dir),
        SHOP_RESTART="0",  # a crash is an error of the run, not something to paper over
        SHOP_MONGO_PER_SERVICE="1" if mongo_per_service else "0",
        SHOP_MONGO_MODULE=MONGO_MODULE,
        MONGO_SERIAL_TRANSACTIONS="1" if serial_transactions else "0",
        SHOP_REPLICAS=",".join(f"{name}={n}" for name, n in replicas.items()),
        AMQP_URL=amqp_url,
        BUS_PREFIX=prefix,
        NO_COLOR="1",
        PYTHONUNBUFFERED="1",
        LOG_FORMAT="json",  # what production ships
        ACCESS_LOG="false",  # as SHOP_ENV=prod has it (the runner's is dev)
        SHOP_ADMIN_EMAIL=ADMIN_EMAIL,
        SHOP_ADMIN_PASSWORD=ADMIN_PASSWORD,
        SHOP_SEED_CATALOG="0",
        # Preparation only: many registrations from one IP, argon2 at OWASP's minimum cost (the
        # measured path, placing and confirming orders, hashes no password).
        USER_IP_RATE_LIMIT="1000000000",
        USER_ARGON2_TIME_COST=str(ARGON2["time_cost"]),
        USER_ARGON2_MEMORY_KIB=str(ARGON2["memory_kib"]),
        USER_ARGON2_PARALLELISM=str(ARGON2["parallelism"]),
        USER_ACCESS_TOKEN_MINUTES="240",  # the full sweep outlives 15 min tokens
    )
    log = (run_dir / "runner.log").open("wb")
    services = [name for name in SERVICE_NAMES if fulfilment or name not in FULFILMENT]
    process = subprocess.Popen(
        [
            sys.executable,
            "scripts/run_local.py",
            "--ready-timeout",
            str(timeout),
            "--only",
            ",".join(services),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    system = System(process, base, prefix, run_dir, amqp_url, replicas, mongo_per_service)
    system.services = tuple(services)
    try:
        system.wait_for_line(r"ready in [0-9.]+s", timeout + 10)
        for found in re.finditer(r"embedded (Mongo|mongo-(\w+)) ready at (\S+)", system.text()):
            system.mongo_urls[found.group(2) or ""] = found.group(3)
    except BaseException:
        system.stop()
        raise
    return system
