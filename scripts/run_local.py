"""Run the whole shop locally under one supervisor: what `make run` calls.

    python scripts/run_local.py [--only gateway,user] [--no-wait] [--no-restart]

1. Check RabbitMQ at `AMQP_URL` with a real AMQP handshake; say how to start it when missing.
2. Unless `MONGO_URL` is set, start the embedded MongoDB-wire server (`devkit.embedded_mongo`).
   In memory by default: measured on this code base, SQLite-backed storage is 4-50x slower
   (see `--mongo-path`); pass `--mongo-path .run/mongo.sqlite` to keep data across runs.
3. Start the gateway and every service as child processes, each output line prefixed with the
   service name; restart a child that dies unexpectedly, with backoff. Beside them, in dev, seed
   the demo catalogue into inventory's database (`python -m devkit.seed_catalogue --demo`: the
   missing products, each with its ProductCreated in the outbox for inventory's relay;
   `SHOP_SEED_CATALOG=0` skips it). In dev, an Admin and a Manager: the `SHOP_ADMIN_*` and
   `SHOP_MANAGER_*` variables, or generated once into `.run/accounts.env` (runner.accounts).
4. Wait for the gateway's `/readyz` (and the seeding), then print the URLs and the accounts.
5. Ctrl-C / SIGTERM: SIGTERM every child (gateway first, Mongo last), SIGKILL after a grace.

Environment: `MONGO_URL`, `AMQP_URL`, `BUS_PREFIX`, `SHOP_PORT_BASE` (gateway port; service N
listens on base+N, default 8000), `SHOP_MONGO_PORT` (default 27017), `SHOP_RUN_DIR` (default
`.run`: generated keys, optional Mongo file), `SHOP_RESTART` (`0` disables restarts),
`SHOP_REPLICAS` (`order=2`: a second instance of a service, 10 ports above the first, consuming
from the same queue), `SHOP_MONGO_PER_SERVICE` (default `1`: one embedded Mongo per service, user
on SHOP_MONGO_PORT and the next ones above it, 27017-27023 by default; `0`: one shared server on
SHOP_MONGO_PORT), `SHOP_MONGO_MODULE` (the embedded server's module, default
`devkit.embedded_mongo`; the bench runs `bench.counting_mongo`, which also counts commands),
`SHOP_SEED_CATALOG` (`0`: no demo catalogue). With embedded Mongo
the services get `MONGO_SERIAL_TRANSACTIONS=1` (one transaction at a time per process): the
embedded server conflicts any two overlapping write transactions, and both defaults measured
2-6x faster than one shared server with concurrent transactions (bench/README.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from runner.accounts import local_accounts
from runner.checks import BROKER_HELP, banner, check_broker, wait_ready
from runner.children import Child, Printer
from runner.config import ROOT, Config, child_env, parse_args, redact


def install_stop_signals(stop: asyncio.Event) -> Callable[[], None]:
    """Ctrl-C and SIGTERM set `stop`; the returned function restores the defaults."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def remove() -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)

    return remove


async def start_mongo(
    config: Config, say: Printer, stop: asyncio.Event, name: str = "mongo", port: int | None = None
) -> tuple[Child, str] | None:
    """The embedded server on SHOP_MONGO_PORT; None when it did not announce READY."""
    port = config.mongo_port if port is None else port
    module = os.environ.get("SHOP_MONGO_MODULE") or "devkit.embedded_mongo"
    argv = [sys.executable, "-m", module, "--port", str(port)]
    if config.mongo_path:
        path = (ROOT / config.mongo_path).resolve()
        if name != "mongo":
            path = path.with_name(f"{path.stem}-{name.removeprefix('mongo-')}{path.suffix}")
        path.parent.mkdir(parents=True, exist_ok=True)
        argv += ["--path", str(path)]
    mongo = Child(name, argv, dict(os.environ), say, config.restart, ready_prefix="READY ")
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


async def seed_demo_catalogue(env: dict[str, str], say: Printer) -> bool:
    """`python -m devkit.seed_catalogue --demo` with inventory's environment (its Mongo, its
    database): the demo products that are missing. True when it succeeded."""
    argv = [sys.executable, "-m", "devkit.seed_catalogue", "--demo"]
    seeding = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await seeding.communicate()
    except asyncio.CancelledError:  # stopped before it finished
        seeding.kill()
        await seeding.wait()
        raise
    lines = out.decode(errors="replace").strip().splitlines() or ["(no output)"]
    if seeding.returncode == 0:
        say("runner", lines[-1])
        return True
    say("runner", f"the demo catalogue was not seeded (exit {seeding.returncode}):")
    for line in lines[-10:]:
        say("runner", f"  {line}")
    return False


async def run(config: Config) -> int:
    say = Printer(config.colour)
    stop = asyncio.Event()
    remove_signals = install_stop_signals(stop)
    t0 = time.monotonic()
    children: list[Child] = []
    mongos: list[Child] = []
    seeding: asyncio.Task[bool] | None = None
    try:
        reason = await check_broker(config.amqp_url)
        if reason is not None:
            sys.stderr.write(BROKER_HELP.format(url=redact(config.amqp_url), reason=reason))
            return 2
        say("runner", f"broker ok at {redact(config.amqp_url)}")

        mongo_url = config.mongo_url
        own_mongo: dict[str, str] = {}  # service → its own server (SHOP_MONGO_PER_SERVICE)
        if mongo_url is None:
            where = f"file {config.mongo_path}" if config.mongo_path else "in memory"
            names = [n for n in config.only if n != "gateway"] if config.mongo_per_service else []
            for name in names or [""]:
                label = f"mongo-{name}" if name else "mongo"
                port = config.mongo_port_of(name) if name else None
                started = await start_mongo(config, say, stop, label, port)
                if started is None:
                    say(
                        "runner",
                        f"embedded {label} did not start" if not stop.is_set() else "stopped",
                    )
                    return 1 if not stop.is_set() else 0
                child, url = started
                mongos.append(child)
                own_mongo[name] = url
                say("runner", f"embedded {label if name else 'Mongo'} ready at {url} ({where})")
            # The shared server, or (per service) any one for the children that use none.
            mongo_url = next(iter(own_mongo.values()))
            own_mongo.pop("", None)

        (config.run_dir / "keys").mkdir(parents=True, exist_ok=True)
        env = child_env(config, mongo_url)
        accounts = (
            local_accounts(config.run_dir, os.environ, generate=env["SHOP_ENV"] == "dev")
            if "user" in config.only
            else None
        )
        if "notify" in config.only:
            # Email goes over real SMTP to this sink; it keeps each message under .run/mail.
            sink = [
                sys.executable,
                "-m",
                "devkit.smtp_sink",
                "--port",
                str(config.smtp_port),
                "--dir",
                str(config.run_dir / "mail"),
            ]
            child = Child("smtp-sink", sink, env, say, config.restart)
            await child.start()
            children.append(child)
        if config.seed_catalogue and "inventory" in config.only and env["SHOP_ENV"] == "dev":
            seed_env = dict(env, MONGO_URL=own_mongo.get("inventory", mongo_url))
            seeding = asyncio.create_task(seed_demo_catalogue(seed_env, say))
        for name in config.only:
            for index in range(config.instances(name)):
                own = dict(env, **{f"{name.upper()}_PORT": str(config.instance_port(name, index))})
                if name in own_mongo:
                    own["MONGO_URL"] = own_mongo[name]
                if name == "user" and accounts is not None:
                    own.update(accounts.env)  # only the user service needs the passwords
                argv = [sys.executable, "-m", f"{name}_service"]
                label = config.instance_name(name, index)
                child = Child(label, argv, own, say, config.restart)
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
            if seeding is not None:
                await seeding
            for line in banner(config, mongo_url, time.monotonic() - t0, accounts):
                say("runner", line)
        await stop.wait()
        say("runner", "stopping")
        return 0
    finally:
        if seeding is not None and not seeding.done():
            seeding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await seeding
        # The gateway first (no new requests), then the services together, then the database.
        gateway = [c for c in children if c.name == "gateway"]
        for group in (gateway, [c for c in children if c.name != "gateway"]):
            await asyncio.gather(*(c.stop(config.grace) for c in group))
        await asyncio.gather(*(m.stop(config.grace) for m in mongos))
        remove_signals()


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
