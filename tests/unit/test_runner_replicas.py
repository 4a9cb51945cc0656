"""The runner's two options for scale experiments (`make bench`): SHOP_REPLICAS starts a second
instance of a service on its own port, SHOP_MONGO_PER_SERVICE one embedded Mongo per service."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from runner.config import parse_args, parse_replicas  # noqa: E402

pytestmark = pytest.mark.unit


def test_replicas_are_parsed_and_bounded() -> None:
    assert parse_replicas("") == ()
    assert parse_replicas(" order=2, payment=1 ") == (("order", 2), ("payment", 1))
    for wrong in ("gateway=2", "nope=2", "order=3", "order=0", "order", "order=x"):
        with pytest.raises(ValueError, match="SHOP_REPLICAS"):
            parse_replicas(wrong)


def test_a_second_instance_listens_ten_ports_above_the_first() -> None:
    config = parse_args([], env={"SHOP_PORT_BASE": "31000", "SHOP_REPLICAS": "order=2"})
    assert config.instances("order") == 2
    assert config.instances("user") == 1
    assert [config.instance_port("order", i) for i in range(2)] == [31003, 31013]
    assert [config.instance_name("order", i) for i in range(2)] == ["order", "order-2"]
    assert config.mongo_per_service is True


def test_a_bad_replica_setting_stops_the_runner_with_a_message() -> None:
    with pytest.raises(SystemExit):
        parse_args([], env={"SHOP_REPLICAS": "gateway=2"})


def test_one_mongo_per_service_is_the_default() -> None:
    assert parse_args([], env={"SHOP_MONGO_PER_SERVICE": "1"}).mongo_per_service is True
    assert parse_args([], env={"SHOP_MONGO_PER_SERVICE": "0"}).mongo_per_service is False


def test_each_service_has_its_embedded_mongo_on_a_port_of_its_own() -> None:
    config = parse_args([], env={})
    ports = [config.mongo_port_of(name) for name in ("user", "inventory", "analytics", "shipping")]
    assert ports == [27017, 27018, 27022, 27023]
    assert parse_args([], env={"SHOP_MONGO_PORT": "0"}).mongo_port_of("order") == 0
