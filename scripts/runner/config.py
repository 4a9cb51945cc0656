"""What the runner decides before it starts anything: services, ports, URLs, environment."""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"

# Name, port offset from SHOP_PORT_BASE. The gateway is started last and stopped first.
SERVICES: tuple[tuple[str, int], ...] = (
    ("user", 1),
    ("inventory", 2),
    ("order", 3),
    ("payment", 4),
    ("notify", 5),
    ("analytics", 6),
    ("shipping", 7),
    ("gateway", 0),
)
SERVICE_NAMES = tuple(name for name, _ in SERVICES)
# The local SMTP sink that notify sends email to (compose uses Mailpit instead).
SMTP_SINK_OFFSET = 25
# SHOP_REPLICAS=order=2: a second instance of a service listens 10 ports above the first
# (competing consumers on the same queue; the gateway keeps sending HTTP to the first).
MAX_INSTANCES = 2
REPLICA_PORT_STEP = 10


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
    replicas: tuple[tuple[str, int], ...] = ()  # SHOP_REPLICAS, e.g. (("order", 2),)
    mongo_per_service: bool = True  # SHOP_MONGO_PER_SERVICE=0: one shared embedded server
    # SHOP_SEED_CATALOG=0: no demo catalogue (devkit.seed_catalogue; seeded in dev only).
    seed_catalogue: bool = True

    def port(self, service: str) -> int:
        return self.port_base + dict(SERVICES)[service]

    def instances(self, service: str) -> int:
        return dict(self.replicas).get(service, 1)

    def instance_port(self, service: str, index: int) -> int:
        """The port of instance `index` (0 = the first, the one the gateway uses)."""
        return self.port(service) + REPLICA_PORT_STEP * index

    @staticmethod
    def instance_name(service: str, index: int) -> str:
        return service if index == 0 else f"{service}-{index + 1}"

    @property
    def smtp_port(self) -> int:
        return self.port_base + SMTP_SINK_OFFSET

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.port(service)}"

    def mongo_port_of(self, service: str) -> int:
        """The embedded server of `service` (one per service): SHOP_MONGO_PORT for user, then
        one up per service in port order (27017-27023 by default); 0 (any free port) when
        SHOP_MONGO_PORT is 0."""
        if self.mongo_port == 0:
            return 0
        return self.mongo_port + dict(SERVICES)[service] - 1


# A run's ports: the services at base+0…7, second instances at base+10+offset, the SMTP sink at
# base+25 (SMTP_SINK_OFFSET).
PORT_BLOCK = 30


def free_port_block(size: int = PORT_BLOCK) -> int:
    """A base port such that base … base+size-1 are all free right now (for `SHOP_PORT_BASE`),
    below the ephemeral range (32768+)."""
    for _ in range(200):
        base = 20000 + secrets.randbelow(12000 - size)
        sockets: list[socket.socket] = []
        try:
            for port in range(base, base + size):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no free block of ports")


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
    try:
        replicas = parse_replicas(env.get("SHOP_REPLICAS", ""))
    except ValueError as exc:
        parser.error(str(exc))
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
        replicas=replicas,
        mongo_per_service=env.get("SHOP_MONGO_PER_SERVICE", "1") != "0",
        seed_catalogue=env.get("SHOP_SEED_CATALOG", "1") != "0",
    )


def parse_replicas(text: str) -> tuple[tuple[str, int], ...]:
    """`order=2,payment=2` → (("order", 2), ("payment", 2)); the gateway cannot be replicated
    (clients reach one port) and at most MAX_INSTANCES instances are started per service."""
    found: dict[str, int] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, _, count = item.partition("=")
        name = name.strip()
        if name not in SERVICE_NAMES or name == "gateway":
            raise ValueError(f"SHOP_REPLICAS: {name!r} is not a service that can have replicas")
        if not count.strip().isdigit() or not 1 <= int(count) <= MAX_INSTANCES:
            raise ValueError(f"SHOP_REPLICAS: {item!r}: the count must be 1…{MAX_INSTANCES}")
        found[name] = int(count)
    return tuple(sorted(found.items()))


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
        NOTIFY_SMTP_HOST="127.0.0.1",
        NOTIFY_SMTP_PORT=str(config.smtp_port),
        NOTIFY_PUBLIC_BASE_URL=config.url("gateway"),
        PAYMENT_USER_URL=config.url("user"),
        ORDER_USER_URL=config.url("user"),
        ORDER_INVENTORY_URL=config.url("inventory"),
        # The gateway and the services present it to each other (kit.internal); new each run,
        # unless the caller set one.
        INTERNAL_TOKEN=env.get("INTERNAL_TOKEN") or secrets.token_urlsafe(32),
    )
    if config.mongo_url is None:
        # The embedded server conflicts any two overlapping write transactions, so each
        # service runs its own one at a time (kit.transactions; measured faster, bench/README).
        env.setdefault("MONGO_SERIAL_TRANSACTIONS", "1")
    # The web front end, once `make run` / `make test` built it (scripts/build-web.sh).
    env.setdefault("GATEWAY_WEB_DIR", str(ROOT / "web" / "dist"))
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
