"""Run the whole shop locally under one supervisor: what `make run` calls.

    python scripts/run_local.py [--only gateway,user] [--no-wait] [--no-restart]

1. Unless `MONGO_URL` is set, start the embedded MongoDB-wire server (`kit.embedded_mongo`).
   In memory by default: measured on this code base, SQLite-backed storage is 4-50x slower
   (see `--mongo-path`); pass `--mongo-path .run/mongo.sqlite` to keep data across runs.
2. Check RabbitMQ at `AMQP_URL` with a real AMQP handshake; say how to start it when missing.
3. Start the gateway and every service as child processes, each output line prefixed with the
   service name; restart a child that dies unexpectedly, with backoff.
4. Wait for the gateway's `/readyz`, then print the URLs.
5. Ctrl-C / SIGTERM: SIGTERM every child (gateway first, Mongo last), SIGKILL after a grace.

Environment: `MONGO_URL`, `AMQP_URL`, `BUS_PREFIX`, `SHOP_PORT_BASE` (gateway port; service N
listens on base+N, default 8000), `SHOP_MONGO_PORT` (default 27017), `SHOP_RUN_DIR` (default
`.run`: generated keys, optional Mongo file), `SHOP_RESTART` (`0` disables restarts).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

import httpx

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"

# Name, port offset from SHOP_PORT_BASE. The gateway is started last and stopped first.
SERVICES: tuple[tuple[str, int], ...] = (
    ("user", 1),
    ("inventory", 2),
    ("order", 3),
    ("payment", 4),
    ("notify", 5),
    ("analytics", 6),
    ("gateway", 0),
)
SERVICE_NAMES = tuple(name for name, _ in SERVICES)
NAME_WIDTH = max(len(n) for n in (*SERVICE_NAMES, "mongo", "runner"))
COLOURS = ("36", "32", "33", "35", "34", "91", "96", "93")

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
# A child that stayed up this long is considered healthy again: its backoff starts over.
BACKOFF_RESET_AFTER = 30.0


# ---------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class Config:
    """Everything the runner decides before starting anything."""

    only: tuple[str, ...]
    wait: bool
    restart: bool
    ready_timeout: float
    grace: float
    port_base: int
    mongo_url: str | None  # None: start the embedded server
    mongo_port: int
    mongo_path: str | None
    amqp_url: str
    run_dir: Path
    colour: bool

    def port(self, service: str) -> int:
        return self.port_base + dict(SERVICES)[service]

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.port(service)}"


def parse_args(argv: Sequence[str] | None = None, env: dict[str, str] | None = None) -> Config:
    """Command line first, then the environment, then defaults."""
    env = dict(os.environ) if env is None else env
    parser = argparse.ArgumentParser(description="Run the shop locally (what `make run` does).")
    parser.add_argument("--only", default="", help="comma-separated services, e.g. gateway,user")
    parser.add_argument("--no-wait", action="store_true", help="do not wait for /readyz")
    parser.add_argument("--no-restart", action="store_true", help="do not restart dead children")
    parser.add_argument("--ready-timeout", type=float, default=60.0)
    parser.add_argument("--grace", type=float, default=10.0, help="seconds from SIGTERM to KILL")
    parser.add_argument(
        "--mongo-path",
        default=env.get("SHOP_MONGO_PATH") or None,
        help="SQLite file for the embedded Mongo (durable but much slower); default: memory",
    )
    args = parser.parse_args(argv)
    only = tuple(s.strip() for s in args.only.split(",") if s.strip()) or SERVICE_NAMES
    unknown = sorted(set(only) - set(SERVICE_NAMES))
    if unknown:
        parser.error(f"unknown service(s) {', '.join(unknown)}; known: {', '.join(SERVICE_NAMES)}")
    colour = not env.get("NO_COLOR") and (bool(env.get("FORCE_COLOR")) or sys.stdout.isatty())
    return Config(
        only=tuple(s for s in SERVICE_NAMES if s in only),
        wait=not args.no_wait,
        restart=not args.no_restart and env.get("SHOP_RESTART", "1") != "0",
        ready_timeout=args.ready_timeout,
        grace=args.grace,
        port_base=int(env.get("SHOP_PORT_BASE", "8000")),
        mongo_url=env.get("MONGO_URL") or None,
        mongo_port=int(env.get("SHOP_MONGO_PORT", "27017")),
        mongo_path=args.mongo_path,
        amqp_url=env.get("AMQP_URL") or DEFAULT_AMQP_URL,
        run_dir=(ROOT / env.get("SHOP_RUN_DIR", ".run")).resolve(),
        colour=colour,
    )


def child_env(config: Config, mongo_url: str) -> dict[str, str]:
    """The environment every child gets: shared URLs, each service's port, the gateway's map."""
    env = dict(os.environ)
    env.update(
        PYTHONUNBUFFERED="1",
        MONGO_URL=mongo_url,
        AMQP_URL=config.amqp_url,
        SHOP_ENV=env.get("SHOP_ENV", "dev"),
        # Readable lines for a terminal; LOG_FORMAT=json gives what production ships.
        LOG_FORMAT=env.get("LOG_FORMAT", "console"),
        JWKS_URL=f"{config.url('user')}/api/v1/users/.well-known/jwks.json",
        USER_KEYS_DIR=str(config.run_dir / "keys"),
    )
    for name, _ in SERVICES:
        env[f"{name.upper()}_PORT"] = str(config.port(name))
        if name != "gateway":
            env[f"GATEWAY_{name.upper()}_URL"] = config.url(name)
    return env


def redact(url: str) -> str:
    """The URL without its password, for printing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


# ---------------------------------------------------------------------------------------------
# Output


class Printer:
    """Writes lines prefixed with a padded (and, on a terminal, coloured) name."""

    def __init__(self, colour: bool, out: TextIO = sys.stdout) -> None:
        self._colour = colour
        self._out = out
        self._codes: dict[str, str] = {}

    def __call__(self, name: str, line: str) -> None:
        label = name.ljust(NAME_WIDTH)
        if self._colour:
            code = self._codes.setdefault(name, COLOURS[len(self._codes) % len(COLOURS)])
            label = f"\033[{code}m{label}\033[0m"
        self._out.write(f"{label} | {line}\n")
        self._out.flush()


# ---------------------------------------------------------------------------------------------
# Children


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM if the runner dies without cleaning up (e.g. SIGKILL)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Child:
    """One supervised process: started, its output forwarded, restarted with backoff."""

    name: str
    argv: list[str]
    env: dict[str, str]
    say: Printer
    restart: bool
    ready_prefix: str | None = None  # a line that announces readiness, e.g. "READY "
    process: asyncio.subprocess.Process | None = None
    ready_line: asyncio.Future[str] | None = None
    stopping: bool = False
    restarts: int = 0
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    async def start(self) -> None:
        """Start the process and a task that forwards its output and supervises it."""
        self.ready_line = asyncio.get_running_loop().create_future()
        await self._spawn()
        self._task = asyncio.create_task(self._supervise(), name=f"supervise-{self.name}")

    async def _spawn(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *self.argv,
            cwd=ROOT,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            # Own process group: Ctrl-C reaches the runner only, which stops children in order.
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            limit=1 << 20,
        )
        self.say("runner", f"started {self.name} (pid {self.process.pid})")

    async def _forward_output(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while True:
            try:
                raw = await process.stdout.readline()
            except ValueError:  # a line above the limit: skip it rather than stop reading
                continue
            if not raw:
                if self.ready_prefix and self.ready_line and not self.ready_line.done():
                    self.ready_line.set_exception(RuntimeError(f"{self.name} exited before ready"))
                return
            line = raw.decode(errors="replace").rstrip("\n")
            if self.ready_prefix and line.startswith(self.ready_prefix):
                if self.ready_line and not self.ready_line.done():
                    self.ready_line.set_result(line.removeprefix(self.ready_prefix))
            self.say(self.name, line)

    async def _supervise(self) -> None:
        backoff = BACKOFF_FIRST
        while True:
            process = self.process
            assert process is not None
            started = time.monotonic()
            await self._forward_output(process)
            code = await process.wait()
            if self.stopping:
                self.say("runner", f"{self.name} stopped ({describe_exit(code)})")
                return
            self.say("runner", f"{self.name} exited unexpectedly ({describe_exit(code)})")
            if not self.restart:
                return
            if time.monotonic() - started >= BACKOFF_RESET_AFTER:
                backoff = BACKOFF_FIRST
            self.say("runner", f"restarting {self.name} in {backoff:g}s")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)
            if self.stopping:
                return
            self.restarts += 1
            await self._spawn()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def stop(self, grace: float) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds; waits for the supervision task."""
        self.stopping = True
        await self._terminate(grace)
        if self._task is not None:
            # Let it forward the last lines and report the exit; a restart backoff is cancelled.
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._task, 2.0)
        await self._terminate(grace)  # a restart that raced with the stop

    async def _terminate(self, grace: float) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            self.say("runner", f"{self.name} did not stop within {grace:g}s: killing it")
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


def describe_exit(code: int) -> str:
    """`exit 1`, or `SIGTERM` for a process ended by a signal (uvicorn re-raises SIGTERM)."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return signal.Signals(-code).name
    return f"exit {code}"


# ---------------------------------------------------------------------------------------------
# Checks


async def check_broker(url: str, timeout: float = 5.0) -> str | None:
    """None when an AMQP handshake with the broker succeeds, else the reason it did not."""
    import aio_pika

    # aiormq logs every failed connect attempt; the runner explains the failure itself.
    for name in ("aiormq", "aio_pika"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        connection = await asyncio.wait_for(aio_pika.connect(url, timeout=timeout), timeout + 1)
    except Exception as exc:  # noqa: BLE001 - any failure means "not usable"
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    await connection.close()
    return None


BROKER_HELP = """\
RabbitMQ is not reachable at {url}: {reason}

Start it, then run `make run` again:
  Debian/Ubuntu:  sudo apt-get install rabbitmq-server && sudo rabbitmq-server -detached
  Docker:         docker run -d --name shop-rabbit -p 5672:5672 -p 15672:15672 rabbitmq:3-management
or point AMQP_URL at a broker you have (amqp://user:password@host:5672/vhost).
"""


async def readiness(client: httpx.AsyncClient, config: Config) -> dict[str, str]:
    """{service: "ready" | why not} for every started service.

    A full run asks the gateway, whose `/readyz` reports every service. A partial run
    (`--only`), or a full one whose gateway does not answer yet, asks each service itself (the
    gateway only for liveness: it cannot be ready without all the services behind it).
    """
    if set(config.only) == set(SERVICE_NAMES):
        try:
            response = await client.get(config.url("gateway") + "/readyz", timeout=3.0)
            services = response.json()["services"]
            return {name: str(services.get(name, "unknown")) for name in config.only}
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            pass
    statuses = await asyncio.gather(*(own_status(client, config, n) for n in config.only))
    return dict(zip(config.only, statuses, strict=True))


async def own_status(client: httpx.AsyncClient, config: Config, name: str) -> str:
    """One service's own answer: "ready", "not ready (503)" or "down"."""
    path = "/healthz" if name == "gateway" else "/readyz"
    try:
        response = await client.get(config.url(name) + path, timeout=2.0)
    except httpx.HTTPError:
        return "down"
    return "ready" if response.status_code == 200 else f"not ready ({response.status_code})"


async def wait_ready(config: Config, stop: asyncio.Event) -> dict[str, str]:
    """Poll until every started service is ready; {service: status} of those that are not."""
    deadline = time.monotonic() + config.ready_timeout
    not_ready: dict[str, str] = dict.fromkeys(config.only, "no answer")
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline and not stop.is_set():
            statuses = await readiness(client, config)
            not_ready = {n: s for n, s in statuses.items() if s != "ready"}
            if not not_ready:
                return {}
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
    return not_ready


def banner(config: Config, mongo_url: str, seconds: float) -> list[str]:
    """What a developer needs once everything answers."""
    lines = [f"ready in {seconds:.1f}s"]
    if "gateway" in config.only:
        lines += [
            f"gateway   {config.url('gateway')}",
            f"API docs  {config.url('gateway')}/docs",
        ]
    lines += [
        "services  " + ", ".join(f"{n} :{config.port(n)}" for n in config.only if n != "gateway"),
        f"mongo     {redact(mongo_url)}",
        f"broker    {redact(config.amqp_url)}",
    ]
    missing = [
        v
        for v in (
            "SHOP_ADMIN_EMAIL",
            "SHOP_ADMIN_PASSWORD",
            "SHOP_MANAGER_EMAIL",
            "SHOP_MANAGER_PASSWORD",
        )
        if not os.environ.get(v)
    ]
    if missing:
        lines += [
            "bootstrap accounts: set SHOP_ADMIN_EMAIL/SHOP_ADMIN_PASSWORD and",
            "  SHOP_MANAGER_EMAIL/SHOP_MANAGER_PASSWORD in the environment before `make run`",
            "  to get an Admin and a Manager; SHOP_SEED_CATALOG=0 skips the demo catalogue.",
        ]
    else:
        lines.append(
            f"bootstrap accounts: Admin {os.environ['SHOP_ADMIN_EMAIL']}, "
            f"Manager {os.environ['SHOP_MANAGER_EMAIL']}"
        )
    lines.append("Ctrl-C stops everything.")
    return lines


# ---------------------------------------------------------------------------------------------
# Main


def install_stop_signals(stop: asyncio.Event) -> Callable[[], None]:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def remove() -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)

    return remove


async def start_mongo(
    config: Config, say: Printer, stop: asyncio.Event
) -> tuple[Child, str] | None:
    """The embedded server on SHOP_MONGO_PORT; None when it did not announce READY."""
    argv = [sys.executable, "-m", "kit.embedded_mongo", "--port", str(config.mongo_port)]
    if config.mongo_path:
        path = (ROOT / config.mongo_path).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        argv += ["--path", str(path)]
    mongo = Child("mongo", argv, dict(os.environ), say, config.restart, ready_prefix="READY ")
    await mongo.start()
    assert mongo.ready_line is not None
    stopped: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    waiters: set[asyncio.Future[Any]] = {mongo.ready_line, stopped}
    done, _ = await asyncio.wait(waiters, timeout=30, return_when="FIRST_COMPLETED")
    stopped.cancel()
    if mongo.ready_line not in done or mongo.ready_line.exception() is not None:
        await mongo.stop(config.grace)
        return None
    return mongo, mongo.ready_line.result()


async def run(config: Config) -> int:
    say = Printer(config.colour)
    stop = asyncio.Event()
    remove_signals = install_stop_signals(stop)
    t0 = time.monotonic()
    children: list[Child] = []
    mongo: Child | None = None
    try:
        reason = await check_broker(config.amqp_url)
        if reason is not None:
            sys.stderr.write(BROKER_HELP.format(url=redact(config.amqp_url), reason=reason))
            return 2
        say("runner", f"broker ok at {redact(config.amqp_url)}")

        mongo_url = config.mongo_url
        if mongo_url is None:
            started = await start_mongo(config, say, stop)
            if started is None:
                say("runner", "embedded Mongo did not start" if not stop.is_set() else "stopped")
                return 1 if not stop.is_set() else 0
            mongo, mongo_url = started
            say(
                "runner",
                f"embedded Mongo ready at {mongo_url} "
                f"({'file ' + config.mongo_path if config.mongo_path else 'in memory'})",
            )

        (config.run_dir / "keys").mkdir(parents=True, exist_ok=True)
        env = child_env(config, mongo_url)
        for name in config.only:
            child = Child(name, [sys.executable, "-m", f"{name}_service"], env, say, config.restart)
            await child.start()
            children.append(child)

        if config.wait:
            not_ready = await wait_ready(config, stop)
            if stop.is_set():
                return 0
            if not_ready:
                for name, status in not_ready.items():
                    say("runner", f"not ready after {config.ready_timeout:g}s: {name} ({status})")
                return 1
            for line in banner(config, mongo_url, time.monotonic() - t0):
                say("runner", line)
        await stop.wait()
        say("runner", "stopping")
        return 0
    finally:
        # The gateway first (no new requests), then the services together, then the database.
        gateway = [c for c in children if c.name == "gateway"]
        for group in (gateway, [c for c in children if c.name != "gateway"]):
            await asyncio.gather(*(c.stop(config.grace) for c in group))
        if mongo is not None:
            await mongo.stop(config.grace)
        remove_signals()


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
