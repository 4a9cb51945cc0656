"""The container path of the test fixtures (devkit.containers, devkit.testing), without Docker.

What the MongoDB container runs must give the tests a transactional server: a single-node replica
set that has been initiated, at an address the tests reach, with no root credentials (the image
would add --auth, which a replica set refuses without a key file). Both images are compose's, so
the tests run what `make up` runs. `make test-containers` on a machine where no Docker engine
answers says so in one line and exits non-zero before pytest starts.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pymongo.uri_parser import parse_uri

from devkit import bus_testing, containers
from devkit.containers import Broker, DockerUnavailable, MongoReplicaSet, wanted
from devkit.testing import session_amqp_url, session_mongo_url

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())


def compose_service(name: str) -> dict[str, Any]:
    service: dict[str, Any] = COMPOSE["services"][name]
    return service


def test_the_containers_run_compose_s_images() -> None:
    assert MongoReplicaSet(port=27017).image == compose_service("mongo")["image"]
    assert Broker().image == compose_service("rabbitmq")["image"]


def test_mongod_runs_a_replica_set_on_the_port_the_host_publishes() -> None:
    spec = MongoReplicaSet(port=27999)
    assert spec.command == ["mongod", "--replSet", "rs0", "--bind_ip_all", "--port", "27999"]
    # The set compose initiates and names in every service's MONGO_URL.
    command = compose_service("mongo")["command"]
    assert command[command.index("--replSet") + 1] == spec.name
    assert f"replicaSet={spec.name}" in COMPOSE["x-env"]["MONGO_URL"]


def test_no_root_credentials_with_a_replica_set_and_no_key_file() -> None:
    spec = MongoReplicaSet(port=27999)
    credentials = {k for k in spec.environment if k.startswith("MONGO_INITDB_ROOT_")}
    if "--replSet" in spec.command and "--keyFile" not in spec.command:
        assert credentials == set(), "the image would add --auth, refused without a key file"
    assert "--auth" not in spec.command


def test_the_set_is_initiated_with_the_member_the_tests_reach() -> None:
    spec = MongoReplicaSet(port=27999)
    assert spec.initiate("localhost") == {
        "_id": "rs0",
        "members": [{"_id": 0, "host": "localhost:27999"}],
    }
    # The driver discovers the set from the URL's seed, then talks to the configured member:
    # the two must be the same address.
    url = parse_uri(spec.url("localhost"))
    assert url["nodelist"] == [("localhost", 27999)]
    assert url["options"]["replicaSet"] == "rs0"
    (member,) = spec.initiate("localhost")["members"]
    assert member["host"] == "{}:{}".format(*url["nodelist"][0])
    # Before the set exists there is nothing to discover: initiate over a direct connection.
    direct = parse_uri(spec.direct_url("localhost"))
    assert direct["nodelist"] == url["nodelist"]
    assert direct["options"]["directConnection"] is True


def test_the_broker_url() -> None:
    assert Broker().url("127.0.0.1", 32768) == "amqp://guest:guest@127.0.0.1:32768/"


def answers() -> str | None:
    return None


def no_engine() -> str | None:
    return "no such socket"


def never_asked() -> str | None:
    raise AssertionError("Docker was asked although the choice did not depend on it")


@pytest.mark.parametrize(
    ("environ", "docker", "expected"),
    [
        ({"SHOP_TEST_CONTAINERS": "1"}, answers, True),
        ({"SHOP_TEST_CONTAINERS": "1", "MONGO_URL": "mongodb://x/"}, answers, True),
        ({"SHOP_TEST_CONTAINERS": "0"}, never_asked, False),
        ({}, answers, True),
        ({}, no_engine, False),
        ({"AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/"}, never_asked, False),
        ({"MONGO_URL": "mongodb://127.0.0.1:27017/"}, never_asked, False),
    ],
)
def test_shop_test_containers_chooses(environ: dict[str, str], docker: Any, expected: bool) -> None:
    assert wanted(environ, docker) is expected


def test_containers_asked_for_without_docker_stop_the_session_saying_why() -> None:
    with pytest.raises(DockerUnavailable, match="no Docker engine answers at .*no such socket"):
        wanted({"SHOP_TEST_CONTAINERS": "1"}, no_engine)
    with pytest.raises(ValueError, match="SHOP_TEST_CONTAINERS"):
        wanted({"SHOP_TEST_CONTAINERS": "yes"}, answers)


def test_the_containers_urls_win_and_their_mongo_is_not_the_embedded_one() -> None:
    started = containers.Started(
        mongo_url="mongodb://localhost:27999/?replicaSet=rs0",
        amqp_url="amqp://guest:guest@localhost:32768/",
        broker=None,  # type: ignore[arg-type]  # not started: only the URLs are read
    )
    environ = {"MONGO_URL": "mongodb://elsewhere/", "AMQP_URL": "amqp://elsewhere/"}
    assert session_mongo_url(started, environ) == started.mongo_url
    assert session_amqp_url(started, environ) == started.amqp_url
    # No container: the environment, else the embedded server (None) and the local broker.
    assert session_mongo_url(None, environ) == "mongodb://elsewhere/"
    assert session_mongo_url(None, {}) is None
    assert session_amqp_url(None, {}) == "amqp://guest:guest@127.0.0.1:5672/"


async def test_dropped_connections_go_through_the_session_s_rabbitmqctl() -> None:
    """On containers, the machine's rabbitmqctl does not manage the broker: the one registered
    for the session (the container's) lists and closes connections."""
    calls: list[tuple[str, ...]] = []

    async def container_ctl(*args: str) -> tuple[int, str]:
        calls.append(args)
        listing = (
            '<rabbit@c.1.2>\t[{"connection_name","t1.order"},{"product","aio-pika"}]\n'
            '<rabbit@c.3.4>\t[{"connection_name","t2.order"}]\n'
        )
        return 0, listing if args[0] == "list_connections" else ""

    previous = bus_testing.use_broker_ctl(container_ctl)
    try:
        found = await bus_testing.broker_connections("t1.")
        closed = await bus_testing.close_broker_connection("<rabbit@c.1.2>", "test")
    finally:
        bus_testing.use_broker_ctl(previous)
    assert found == [("<rabbit@c.1.2>", "t1.order")]
    assert closed
    assert calls[-1] == ("close_connection", "<rabbit@c.1.2>", "test")


def test_make_test_containers_without_docker_says_so_and_fails_before_pytest() -> None:
    env = {**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    env.pop("SHOP_TEST_CONTAINERS", None)
    # `-o sync`: the workspace is installed already; the target's own recipe is what is tested.
    done = subprocess.run(
        ["make", "--no-print-directory", "-o", "sync", "test-containers"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    ours = [line for line in done.stderr.splitlines() if "Docker engine" in line]
    assert ours == [
        "no Docker engine answers at unix:///nonexistent/docker.sock (no such socket): the "
        "MongoDB and RabbitMQ containers need one (`make test-integration` and `make test-e2e` "
        "run without)"
    ]
    assert "test session starts" not in done.stdout
    assert "pytest" not in done.stdout
