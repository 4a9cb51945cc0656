"""The test session's MongoDB and RabbitMQ in containers (testcontainers), as compose runs them.

`SHOP_TEST_CONTAINERS` chooses where the test fixtures (`devkit.testing`) get their servers:

- `1`: containers, or the session stops saying that no Docker engine answers
  (`make test-containers`);
- `0`: never: the broker at `AMQP_URL` (default: the local one), `MONGO_URL` or the embedded server;
- unset: containers when a Docker engine answers and neither `AMQP_URL` nor `MONGO_URL` is set.

MongoDB runs the image compose runs as a single-node replica set (transactions need one) without
authentication: the image turns `--auth` on as soon as it is given root credentials, and a replica
set with authentication needs a key file, which a throwaway test server can do without. mongod
listens inside the container on the very port the host publishes, so the member address in the
replica-set configuration is both the one the tests reach and one mongod recognises as itself
(`replSetInitiate` refuses a configuration without itself); the URL then names the set
(`replicaSet=rs0`), as compose's does, and the driver finds the primary as a service does in
production. RabbitMQ runs compose's image too (`tests/unit/test_container_fixtures.py` holds both
tags to deploy/compose.yaml).

`python -m devkit.containers [--pull]`: one line saying whether a Docker engine answers (exit 1
when none does), and with `--pull` the two images fetched ahead, so that the first test's timeout
does not include a download.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

if TYPE_CHECKING:
    from testcontainers.core.container import DockerContainer

MONGO_IMAGE = "mongo:8.0"
RABBITMQ_IMAGE = "rabbitmq:4.1-management"
REPLICA_SET = "rs0"
VARIABLE = "SHOP_TEST_CONTAINERS"
AMQP_PORT = 5672
# replSetInitiate on a set that exists already (a second call): the set is there, nothing to do.
ALREADY_INITIALIZED = 23


class DockerUnavailable(RuntimeError):
    """Containers were asked for (`SHOP_TEST_CONTAINERS=1`) and no Docker engine answers."""


def docker_host() -> str:
    """Where the Docker client looks for the engine."""
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def docker_problem() -> str | None:
    """Why no Docker engine answers (the client alone is not enough), or None when one does."""
    host = docker_host()
    if host.startswith("unix://") and not os.path.exists(host.removeprefix("unix://")):
        return "no such socket"
    try:
        import docker

        docker.from_env(timeout=2).ping()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"[:120]
    return None


def unavailable_message(problem: str) -> str:
    """The one line that says containers cannot run here, and what runs without them."""
    return (
        f"no Docker engine answers at {docker_host()} ({problem}): the MongoDB and RabbitMQ "
        "containers need one (`make test-integration` and `make test-e2e` run without)"
    )


def wanted(
    environ: Mapping[str, str],
    docker_problem: Callable[[], str | None] = docker_problem,
) -> bool:
    """True when this session's servers are containers (see the module's doc); raises
    `DockerUnavailable` when they must be (`SHOP_TEST_CONTAINERS=1`) and cannot."""
    choice = environ.get(VARIABLE, "").strip()
    if choice == "0":
        return False
    if choice == "1":
        problem = docker_problem()
        if problem is not None:
            raise DockerUnavailable(unavailable_message(problem))
        return True
    if choice:
        raise ValueError(f"{VARIABLE} must be 1, 0 or unset, not {choice!r}")
    if environ.get("AMQP_URL") or environ.get("MONGO_URL"):
        return False
    return docker_problem() is None


@dataclass(frozen=True)
class MongoReplicaSet:
    """What the MongoDB container runs with, and how the tests reach it (pure data: the unit
    tests check it without Docker)."""

    port: int  # inside the container and on the host alike
    image: str = MONGO_IMAGE
    name: str = REPLICA_SET

    @property
    def command(self) -> list[str]:
        return ["mongod", "--replSet", self.name, "--bind_ip_all", "--port", str(self.port)]

    @property
    def environment(self) -> dict[str, str]:
        # No MONGO_INITDB_ROOT_*: with them the image adds --auth, which a replica set only
        # accepts with a key file.
        return {}

    def member(self, host: str) -> str:
        return f"{host}:{self.port}"

    def initiate(self, host: str) -> dict[str, Any]:
        """The replSetInitiate document: one member, at the address the tests reach."""
        return {"_id": self.name, "members": [{"_id": 0, "host": self.member(host)}]}

    def url(self, host: str) -> str:
        return f"mongodb://{self.member(host)}/?replicaSet={self.name}"

    def direct_url(self, host: str) -> str:
        """The server itself, before it belongs to a set (nothing to discover yet)."""
        return f"mongodb://{self.member(host)}/?directConnection=true"


@dataclass(frozen=True)
class Broker:
    """What the RabbitMQ container runs with, and its URL."""

    image: str = RABBITMQ_IMAGE
    user: str = "guest"  # the image lets guest in from other hosts (its 10-defaults.conf)
    password: str = "guest"

    def url(self, host: str, port: int) -> str:
        return f"amqp://{self.user}:{self.password}@{host}:{port}/"


@dataclass
class Started:
    """The running containers: their URLs, and `rabbitmqctl` inside the broker's."""

    mongo_url: str
    amqp_url: str
    broker: DockerContainer

    async def rabbitmqctl(self, *args: str, timeout: float = 60.0) -> tuple[int, str]:
        """`rabbitmqctl args...` in the broker's container: (exit code, output)."""
        result = await asyncio.wait_for(
            asyncio.to_thread(self.broker.exec, ["rabbitmqctl", *args]), timeout
        )
        # No exit code: the exec did not finish, which is no success either.
        code = 1 if result.exit_code is None else result.exit_code
        return code, result.output.decode(errors="replace")


def initiate(spec: MongoReplicaSet, host: str, *, timeout: float = 60.0) -> None:
    """Make the server at `host` a one-member replica set and wait until it is the primary."""
    client: MongoClient[Any] = MongoClient(spec.direct_url(host), serverSelectionTimeoutMS=2000)
    deadline = time.monotonic() + timeout
    try:
        while True:  # the port opens a moment before mongod answers commands
            try:
                client.admin.command("replSetInitiate", spec.initiate(host))
                break
            except OperationFailure as exc:
                if exc.code == ALREADY_INITIALIZED:
                    break
                raise
            except PyMongoError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        while not client.admin.command("hello").get("isWritablePrimary"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"MongoDB at {spec.member(host)} did not become primary")
            time.sleep(0.2)
    finally:
        client.close()


@contextmanager
def started() -> Iterator[Started]:
    """Start both containers (removed when the block ends)."""
    from testcontainers.community.rabbitmq import RabbitMqContainer
    from testcontainers.core.container import DockerContainer

    from devkit.testing import free_port

    with ExitStack() as stack:
        # Docker publishes on every interface, so the port must be free on all of them.
        mongo = MongoReplicaSet(port=free_port("0.0.0.0"))
        container = DockerContainer(mongo.image).with_command(mongo.command)
        container.with_bind_ports(mongo.port, mongo.port)
        for key, value in mongo.environment.items():
            container.with_env(key, value)
        stack.enter_context(container)
        host = container.get_container_host_ip()
        try:
            initiate(mongo, host)
        except Exception as exc:
            logs = b"".join(container.get_logs()).decode(errors="replace")[-2000:]
            raise RuntimeError(f"{mongo.image} did not become a replica set: {logs}") from exc

        broker = Broker()
        rabbit = RabbitMqContainer(broker.image, username=broker.user, password=broker.password)
        stack.enter_context(rabbit)
        amqp_url = broker.url(rabbit.get_container_host_ip(), rabbit.get_exposed_port(AMQP_PORT))
        yield Started(mongo_url=mongo.url(host), amqp_url=amqp_url, broker=rabbit)


def pull() -> None:
    import docker

    client = docker.from_env()
    for image in (MONGO_IMAGE, RABBITMQ_IMAGE):
        repository, tag = image.rsplit(":", 1)
        print(f"pulling {image}", flush=True)
        client.images.pull(repository, tag=tag)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Does a Docker engine answer for the tests?")
    parser.add_argument("--pull", action="store_true", help="fetch the two images ahead")
    args = parser.parse_args(argv)
    problem = docker_problem()
    if problem is not None:
        print(unavailable_message(problem), file=sys.stderr)
        return 1
    print(f"Docker answers at {docker_host()}: {MONGO_IMAGE} (replica set), {RABBITMQ_IMAGE}")
    if args.pull:
        pull()
    return 0


if __name__ == "__main__":
    sys.exit(main())
