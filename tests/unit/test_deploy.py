"""deploy/: the compose file, the Dockerfile and the Kubernetes manifests, checked structurally.

No Docker engine runs where these tests run, so nothing here builds or starts a container; the
checks read the files and compare them with the code: every service present, health checks and
probes, the environment each service's settings read (and what the local runner passes them,
scripts/runner/config.py), images from the workspace Dockerfile, the published ports. Where the
tools exist, `docker compose config` and `kubectl kustomize` run too (skipped with the reason
otherwise).
"""

from __future__ import annotations

import base64
import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from pydantic import AliasChoices

from bus.runtime import bus_config
from bus.topology import Names
from kit.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
sys.path.insert(0, str(ROOT / "scripts"))
import deploy_env  # noqa: E402
import image_sizes  # noqa: E402
from runner.config import SERVICES, child_env, parse_args  # noqa: E402

pytestmark = pytest.mark.unit

PORTS = dict(SERVICES)  # name → offset from 8000
APP_SERVICES = tuple(PORTS)
INFRA = {"mongo", "rabbitmq", "mailpit", "jaeger", "prometheus", "grafana"}
# Host port → the container that publishes it: nothing else may reach the host.
PUBLISHED = {
    8000: "gateway",
    8025: "mailpit",
    16686: "jaeger",
    15672: "rabbitmq",
    9090: "prometheus",
    3000: "grafana",
}
# Read by Python or the OpenTelemetry SDK, not by a settings class.
NOT_SETTINGS = {"PYTHONUNBUFFERED", "OTEL_BSP_SCHEDULE_DELAY"}
# The runner's dev-only key directory (containers get a real key file instead), and the serial
# transactions that only the embedded Mongo needs (compose runs a real MongoDB).
RUNNER_ONLY = {"USER_KEYS_DIR", "MONGO_SERIAL_TRANSACTIONS"}


def port(service: str) -> int:
    return 8000 + PORTS[service]


def settings_class(service: str) -> type[ServiceSettings]:
    module = importlib.import_module(f"{service}_service.settings")
    cls: type[ServiceSettings] = getattr(module, f"{service.capitalize()}Settings")
    return cls


def env_names(cls: type[ServiceSettings]) -> set[str]:
    """Every environment variable the settings class reads."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for name, field in cls.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(c.upper() for c in alias.choices if isinstance(c, str) and c.isupper())
        elif isinstance(alias, str):
            names.add(alias.upper())
        else:
            names.add(f"{prefix}{name}".upper())
    return names


# --- compose --------------------------------------------------------------------------------


def dotenv_values() -> dict[str, str]:
    """What scripts/deploy_env.py writes into deploy/.env (fresh random values)."""
    return {name: make() for name, make in deploy_env.VARIABLES.items()}


INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?:(?P<op>:-|:\?)(?P<arg>[^}]*))?\}")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR:?error}` on every string of `value`."""
    if isinstance(value, str):

        def one(match: re.Match[str]) -> str:
            name, op, arg = match["name"], match["op"], match["arg"]
            if name in env and env[name] != "":
                return env[name]
            if op == ":-":
                return str(arg)
            raise AssertionError(f"compose needs ${name} and deploy/.env would not have it")

        return INTERPOLATION.sub(one, value)
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    return value


@pytest.fixture(scope="module")
def dotenv() -> dict[str, str]:
    return dotenv_values()


@pytest.fixture(scope="module")
def compose(dotenv: dict[str, str]) -> dict[str, Any]:
    raw = yaml.safe_load((DEPLOY / "compose.yaml").read_text())  # merges YAML anchors (<<)
    assert isinstance(raw, dict)
    return dict(interpolate(raw, dotenv))


def compose_env(compose: dict[str, Any], service: str) -> dict[str, str]:
    env = compose["services"][service].get("environment", {})
    assert isinstance(env, dict), f"{service}: use the mapping form of environment"
    return {str(k): str(v) for k, v in env.items()}


def runner_env() -> dict[str, str]:
    """What `make run` passes every child, without whatever this test's environment holds."""
    with mock.patch.dict(os.environ, {}, clear=True):
        return child_env(parse_args([], env={}), "mongodb://127.0.0.1:27017/")


def test_every_service_and_the_infrastructure_is_in_compose(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == INFRA | set(APP_SERVICES)
    assert compose["name"] == "shop"


@pytest.mark.parametrize("service", APP_SERVICES)
def test_each_service_is_built_from_the_workspace_dockerfile(
    compose: dict[str, Any], service: str
) -> None:
    spec = compose["services"][service]
    build = spec["build"]
    assert (DEPLOY / build["context"]).resolve() == ROOT
    assert build["dockerfile"] == "deploy/Dockerfile"
    assert build["args"] == {"SERVICE": service}
    assert spec["image"] == f"shop-{service}:latest"


@pytest.mark.parametrize("service", APP_SERVICES)
def test_each_service_has_a_readiness_healthcheck_restart_and_health_dependencies(
    compose: dict[str, Any], service: str
) -> None:
    spec = compose["services"][service]
    check = " ".join(spec["healthcheck"]["test"])
    assert f"http://127.0.0.1:{port(service)}/readyz" in check
    assert spec["restart"] in {"unless-stopped", "always", "on-failure"}
    depends = spec["depends_on"]
    for infra in ("mongo", "rabbitmq"):
        assert depends[infra] == {"condition": "service_healthy"}
    # Whoever calls a peer over HTTP starts once that peer is healthy.
    for key, value in compose_env(compose, service).items():
        peer = re.fullmatch(r"http://([a-z]+):(\d+)", value)
        if key.endswith("_URL") and peer and peer[1] in PORTS:
            assert depends[peer[1]] == {"condition": "service_healthy"}, key


def test_infrastructure_health_checks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    mongo = services["mongo"]
    replset = mongo["command"][mongo["command"].index("--replSet") + 1]
    check = " ".join(mongo["healthcheck"]["test"])
    assert "rs.initiate" in check and f"_id: '{replset}'" in check
    assert "isWritablePrimary" in check
    # with access control on, the check signs in as the root user (from the environment)
    assert "auth(process.env.MONGO_INITDB_ROOT_USERNAME" in check
    assert "rabbitmq-diagnostics" in services["rabbitmq"]["healthcheck"]["test"]
    assert services["rabbitmq"]["image"].endswith("-management")
    assert services["mailpit"]["healthcheck"]["test"]
    for service in APP_SERVICES:
        env = compose_env(compose, service)
        assert urlsplit(env["MONGO_URL"]).hostname == "mongo"
        assert parse_qs(urlsplit(env["MONGO_URL"]).query)["replicaSet"] == [replset]
        assert env["AMQP_URL"].endswith("@rabbitmq:5672/")
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"


def test_mongo_runs_with_authentication_and_the_broker_with_the_generated_password(
    compose: dict[str, Any], dotenv: dict[str, str]
) -> None:
    services = compose["services"]
    mongo = services["mongo"]
    # a replica set with access control: a key file (a compose secret deploy_env.py makes) and
    # the root user the image creates on the first run, from deploy/.env
    command = mongo["command"]
    key_path = command[command.index("--keyFile") + 1]
    assert key_path in " ".join(mongo["entrypoint"])  # copied there for the mongodb user
    assert mongo["secrets"] == ["mongo_keyfile"]
    assert compose["secrets"]["mongo_keyfile"]["file"] == f"./{deploy_env.MONGO_KEY_FILE}"
    assert "--noauth" not in command
    user, password = dotenv["MONGO_ROOT_USER"], dotenv["MONGO_ROOT_PASSWORD"]
    assert mongo["environment"] == {
        "MONGO_INITDB_ROOT_USERNAME": user,
        "MONGO_INITDB_ROOT_PASSWORD": password,
    }
    rabbit = services["rabbitmq"]["environment"]
    assert rabbit["RABBITMQ_DEFAULT_USER"] == dotenv["RABBITMQ_USER"] != "guest"
    assert rabbit["RABBITMQ_DEFAULT_PASS"] == dotenv["RABBITMQ_PASSWORD"]
    for service in APP_SERVICES:
        env = compose_env(compose, service)
        mongo_url, amqp_url = urlsplit(env["MONGO_URL"]), urlsplit(env["AMQP_URL"])
        assert (mongo_url.username, mongo_url.password) == (user, password), service
        assert parse_qs(mongo_url.query)["authSource"] == ["admin"]
        assert (amqp_url.username, amqp_url.password) == (
            dotenv["RABBITMQ_USER"],
            dotenv["RABBITMQ_PASSWORD"],
        ), service


def test_every_service_holds_the_generated_internal_credential(
    compose: dict[str, Any], dotenv: dict[str, str]
) -> None:
    assert len(dotenv["INTERNAL_TOKEN"]) >= 32
    for service in APP_SERVICES:
        assert compose_env(compose, service)["INTERNAL_TOKEN"] == dotenv["INTERNAL_TOKEN"]


def test_only_the_gateway_names_trusted_proxies_and_compose_has_none(
    compose: dict[str, Any],
) -> None:
    """api.md, "Edge rules → Client address": Docker publishes the gateway's port directly (a
    TCP forward that writes no X-Forwarded-For), so no peer's forwarding header is believed;
    services take the address only from the gateway (TRUSTED_PROXIES is gone)."""
    for service in APP_SERVICES:
        env = compose_env(compose, service)
        assert "TRUSTED_PROXIES" not in env, service
        assert ("GATEWAY_TRUSTED_PROXIES" in env) == (service == "gateway"), service
    assert compose_env(compose, "gateway")["GATEWAY_TRUSTED_PROXIES"] == ""


def test_only_the_gateway_and_the_uis_are_published(compose: dict[str, Any]) -> None:
    published: dict[int, str] = {}
    for name, spec in compose["services"].items():
        assert "expose" not in spec or name in INFRA
        for mapping in spec.get("ports", []):
            parts = str(mapping).split(":")
            assert len(parts) == 3 and parts[0] == "127.0.0.1", f"{name}: {mapping} not loopback"
            published[int(parts[1])] = name
    assert published == PUBLISHED


@pytest.mark.parametrize("service", APP_SERVICES)
def test_compose_env_is_what_the_service_reads_and_what_the_runner_passes(
    compose: dict[str, Any], service: str
) -> None:
    env = compose_env(compose, service)
    reads = env_names(settings_class(service))
    unknown = set(env) - reads - NOT_SETTINGS
    assert not unknown, f"{service} reads none of {sorted(unknown)}"

    runner = runner_env()
    wanted = {k for k in runner if k in reads} - RUNNER_ONLY
    missing = wanted - set(env)
    assert not missing, f"the runner passes {sorted(missing)} to {service}; compose does not"
    assert env[f"{service.upper()}_HOST"] == "0.0.0.0"
    assert env[f"{service.upper()}_PORT"] == str(port(service))
    for key in wanted:
        local = re.fullmatch(r"http://127\.0\.0\.1:(\d+)(/.*)?", runner[key])
        if local is None or key == "NOTIFY_PUBLIC_BASE_URL":
            continue
        peer = next(name for name in PORTS if port(name) == int(local[1]))
        assert env[key] == f"http://{peer}:{local[1]}{local[2] or ''}", key


def test_notify_sends_to_mailpit(compose: dict[str, Any]) -> None:
    env = compose_env(compose, "notify")
    assert env["NOTIFY_SMTP_HOST"] == "mailpit"
    assert env["NOTIFY_SMTP_PORT"] == "1025"
    assert env["NOTIFY_PUBLIC_BASE_URL"] == "http://127.0.0.1:8000"


def test_secrets_come_from_the_generated_files(compose: dict[str, Any]) -> None:
    env = compose_env(compose, "user")
    for name in ("SHOP_ADMIN_EMAIL", "SHOP_ADMIN_PASSWORD", "SHOP_MANAGER_EMAIL"):
        assert env[name]
    secret = compose["services"]["user"]["secrets"][0]
    assert env["USER_JWT_PRIVATE_KEY_PATH"] == f"/run/secrets/{secret}"
    key_file = compose["secrets"][secret]["file"]
    assert key_file == f"./{deploy_env.KEY_FILE}"
    ignored = (DEPLOY / ".gitignore").read_text().split()
    assert ".env" in ignored and key_file.split("/")[1] + "/" in ignored
    # Secrets are never in the file itself: every one is a ${VAR} from deploy/.env.
    text = (DEPLOY / "compose.yaml").read_text()
    assert "PASSWORD: ${" in text and "BEGIN" not in text


@pytest.mark.parametrize("service", APP_SERVICES)
def test_settings_accept_the_compose_environment(
    compose: dict[str, Any], dotenv: dict[str, str], service: str
) -> None:
    # SHOP_ENV=prod: kit refuses placeholder secrets (INTERNAL_TOKEN among them), a Mongo URL
    # without credentials and the broker's guest account; user needs its key path.
    env = compose_env(compose, service)
    assert env["SHOP_ENV"] == "prod"
    with mock.patch.dict(os.environ, env, clear=True):
        settings = settings_class(service)()
    assert settings.port == port(service)
    assert settings.host == "0.0.0.0"
    assert settings.internal_token.get_secret_value() == dotenv["INTERNAL_TOKEN"]
    # ... and each of them is what lets it start: prod refuses it otherwise, naming it
    unsafe = {
        "INTERNAL_TOKEN": ("", "internal_token"),
        "MONGO_URL": ("mongodb://mongo:27017/?replicaSet=rs0", "MONGO_URL"),
        "AMQP_URL": ("amqp://guest:guest@rabbitmq:5672/", "AMQP_URL"),
    }
    for name, (value, named) in unsafe.items():
        with mock.patch.dict(os.environ, env | {name: value}, clear=True):
            with pytest.raises(ValueError, match=named):
                settings_class(service)()


def test_deploy_env_creates_secrets_once(tmp_path: Path) -> None:
    (tmp_path / "k8s/overlays/dev").mkdir(parents=True)
    assert deploy_env.main(["--deploy-dir", str(tmp_path)]) == 0
    first = deploy_env.read_env(tmp_path / ".env")
    key = (tmp_path / deploy_env.KEY_FILE).read_bytes()
    assert set(first) == set(deploy_env.VARIABLES)
    generated = (
        "RABBITMQ_PASSWORD",
        "MONGO_ROOT_PASSWORD",
        "SHOP_ADMIN_PASSWORD",
        "INTERNAL_TOKEN",
    )
    assert len({first[name] for name in generated}) == len(generated)
    assert (tmp_path / ".env").stat().st_mode & 0o077 == 0
    assert key.startswith(b"-----BEGIN PRIVATE KEY-----")
    mongo_key_file = tmp_path / deploy_env.MONGO_KEY_FILE
    mongo_key = mongo_key_file.read_bytes().strip()
    assert 6 <= len(mongo_key) <= 1024 and base64.b64decode(
        mongo_key, validate=True
    )  # mongod's rules
    assert mongo_key_file.stat().st_mode & 0o077 == 0
    assert deploy_env.main(["--deploy-dir", str(tmp_path)]) == 0
    assert deploy_env.read_env(tmp_path / ".env") == first
    assert (tmp_path / deploy_env.KEY_FILE).read_bytes() == key
    assert mongo_key_file.read_bytes().strip() == mongo_key
    overlay = deploy_env.read_env(tmp_path / "k8s/overlays/dev/secrets.env")
    rabbitmq = f"rabbitmq.{deploy_env.DEV_NAMESPACE}.svc"
    assert overlay["AMQP_URL"] == f"amqp://shop:{first['RABBITMQ_PASSWORD']}@{rabbitmq}:5672/"
    mongo = urlsplit(overlay["MONGO_URL"])
    assert (mongo.username, mongo.password) == ("shop", first["MONGO_ROOT_PASSWORD"])
    assert overlay["INTERNAL_TOKEN"] == first["INTERNAL_TOKEN"]
    assert (tmp_path / "k8s/overlays/dev/jwt-private-key.pem").read_bytes() == key
    # the dev overlay's own MongoDB and RabbitMQ: the same accounts, the same key file
    infra = deploy_env.read_env(tmp_path / "k8s/overlays/dev/infra.env")
    assert infra == {name: first[name] for name in deploy_env.INFRA_VARIABLES}
    assert (tmp_path / "k8s/overlays/dev/mongo-keyfile").read_bytes().strip() == mongo_key
    for name in ("secrets.env", "infra.env", "jwt-private-key.pem", "mongo-keyfile"):
        assert (tmp_path / "k8s/overlays/dev" / name).stat().st_mode & 0o077 == 0, name


def test_deploy_env_adds_what_an_older_env_file_lacks(tmp_path: Path) -> None:
    older = {"SHOP_ENV": "prod", "RABBITMQ_USER": "shop", "RABBITMQ_PASSWORD": "kept-as-it-was"}
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in older.items()))
    assert deploy_env.main(["--deploy-dir", str(tmp_path)]) == 0
    now = deploy_env.read_env(tmp_path / ".env")
    assert older.items() <= now.items()
    assert now["INTERNAL_TOKEN"] and now["MONGO_ROOT_PASSWORD"]


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    works = docker and subprocess.run(
        [docker, "compose", "version"], capture_output=True, check=False
    )
    if not works or works.returncode != 0:
        pytest.skip("no `docker compose` plugin here; the structural checks above stand in")
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in dotenv_values().items()))
    result = subprocess.run(
        [str(docker), "compose", "-f", str(DEPLOY / "compose.yaml"), "--env-file", str(env_file)]
        + ["config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


# --- Dockerfile -----------------------------------------------------------------------------


def test_dockerfile_builds_one_workspace_package_without_dev_dependencies() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", text, flags=re.MULTILINE)[1:]
    runtime = stages[-1]
    assert runtime.startswith("python:${PYTHON_VERSION}-slim AS runtime")
    assert "ARG PYTHON_VERSION=3.13" in text
    assert (ROOT / ".python-version").read_text().startswith("3.13")
    syncs = re.findall(r"uv sync (.*)", text)
    assert len(syncs) == 2  # dependencies, then the workspace packages as wheels
    for sync in syncs:
        flags = sync.split()
        assert {"--frozen", "--no-dev", "--no-default-groups"} <= set(flags), sync
        assert flags[-2:] == ["--package", '"shop-${SERVICE}"'], sync
    assert "--no-install-workspace" in syncs[0] and "--no-editable" in syncs[1]
    assert re.search(r"^USER 10001", runtime, flags=re.MULTILINE)
    assert "/uv" not in runtime and "COPY libs" not in runtime
    assert 'exec python -m \\"${SHOP_SERVICE}_service\\"' in runtime
    # uv reads the whole workspace: every member's pyproject must be in the dependency layer.
    members = sorted(p.parent for p in ROOT.glob("*/*/pyproject.toml") if "bench" not in p.parts)
    for member in members:
        relative = member.relative_to(ROOT)
        assert f"COPY {relative}/pyproject.toml {relative}/" in text, relative
    for service in APP_SERVICES:
        assert (ROOT / "services" / service / "src" / f"{service}_service" / "__main__.py").exists()


def test_build_context_excludes_local_state() -> None:
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert ignore[ignore.index("*") :][:1] == ["*"]  # deny by default
    for allowed in ("!pyproject.toml", "!uv.lock", "!libs/", "!services/", "!web/"):
        assert allowed in ignore
    assert "web/node_modules" in ignore and "**/tests/" in ignore


# --- what an image installs (issue 21: lean images) -------------------------------------------

# Named here so that the derived set below cannot quietly come out empty.
KNOWN_DEVELOPMENT = {"shop-devkit", "mongoeco", "aiosmtpd", "pytest", "ruff", "mypy", "playwright"}


@pytest.fixture(scope="module")
def development_only() -> set[str]:
    """Every locked distribution that only the workspace's dependency groups (dev, bench)
    bring in: the workspace root with its default groups minus the root without them."""
    # The root project depends on every service; its groups hold the development side.
    everything = image_sizes.install_set("", ["--frozen"])
    runtime = image_sizes.install_set("", ["--frozen", "--no-dev", "--no-default-groups"])
    only = set(everything) - set(runtime)
    assert KNOWN_DEVELOPMENT <= only, sorted(KNOWN_DEVELOPMENT - only)
    return only


@pytest.mark.parametrize("service", APP_SERVICES)
def test_each_image_installs_its_service_and_runtime_dependencies_only(
    development_only: set[str], service: str
) -> None:
    """The install set is exported from uv.lock with the Dockerfile's own `uv sync` flags."""
    installed = image_sizes.install_set(service)
    assert not set(installed) & development_only, sorted(set(installed) & development_only)
    workspace = {name for name, where in installed.items() if name.startswith("shop-")}
    assert workspace == {f"shop-{service}", "shop-kit", "shop-bus", "shop-contracts"}
    assert {"uvicorn", "fastapi", "pymongo", "aio-pika"} <= set(installed)


def test_a_whole_workspace_sync_would_bring_the_development_packages(
    tmp_path: Path, development_only: set[str]
) -> None:
    """The check above can fail: a Dockerfile that syncs the workspace as `make sync` does
    would install devkit, the embedded Mongo, the SMTP sink and the tools."""
    naive = tmp_path / "Dockerfile"
    naive.write_text("FROM python:3.13-slim\nRUN uv sync --frozen --all-packages\n")
    installed = image_sizes.install_set("order", image_sizes.dockerfile_sync_flags(naive))
    assert KNOWN_DEVELOPMENT <= set(installed) & development_only


def test_image_sizes_reads_the_shop_images_from_docker_image_ls() -> None:
    listed = (
        "shop-order:latest\t211MB\nshop/order:dev\t211MB\n"
        "python:3.13-slim\t125MB\nshop-web:x\t1MB\n"  # not a shop service
    )
    assert image_sizes.parse_image_ls(listed) == {
        "order (shop-order:latest)": "211MB",
        "order (shop/order:dev)": "211MB",
    }


# --- Kubernetes -----------------------------------------------------------------------------

BASE = DEPLOY / "k8s" / "base"


@pytest.fixture(scope="module")
def manifests() -> dict[tuple[str, str], dict[str, Any]]:
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk, "every manifest in base/ is listed, and only those"
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for name in sorted(listed):
        for doc in yaml.safe_load_all((BASE / name).read_text()):
            if doc:
                found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


def container(manifests: dict[tuple[str, str], dict[str, Any]], service: str) -> dict[str, Any]:
    pod = manifests[("Deployment", service)]["spec"]["template"]["spec"]
    (only,) = pod["containers"]
    assert isinstance(only, dict)
    return only


@pytest.mark.parametrize("service", APP_SERVICES)
def test_each_service_has_deployment_service_autoscaler_and_pdb(
    manifests: dict[tuple[str, str], dict[str, Any]], service: str
) -> None:
    deployment = manifests[("Deployment", service)]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    svc = manifests[("Service", service)]["spec"]
    assert svc["selector"] == selector
    assert svc["ports"][0]["port"] == port(service)
    # One autoscaler per Deployment: KEDA's ScaledObject creates and owns an HPA itself, so a
    # consumer with both would have two controllers fighting over its replica count.
    hpa = manifests.get(("HorizontalPodAutoscaler", service))
    scaled = manifests.get(("ScaledObject", service))
    assert (hpa is None) != (scaled is None), "exactly one of HPA and ScaledObject"
    if hpa is not None:
        spec = hpa["spec"]
        assert spec["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": service,
        }
        assert spec["metrics"][0]["resource"]["name"] == "cpu"
        assert 1 <= spec["minReplicas"] < spec["maxReplicas"]
    else:
        assert scaled is not None
        spec = scaled["spec"]
        assert spec["scaleTargetRef"] == {"name": service}
        assert 1 <= spec["minReplicaCount"] < spec["maxReplicaCount"]
        assert "cpu" in {trigger["type"] for trigger in spec["triggers"]}
    pdb = manifests[("PodDisruptionBudget", service)]["spec"]
    assert pdb["selector"]["matchLabels"] == selector
    assert "minAvailable" in pdb or "maxUnavailable" in pdb


@pytest.mark.parametrize("service", APP_SERVICES)
def test_each_deployment_has_probes_resources_and_runs_unprivileged(
    manifests: dict[tuple[str, str], dict[str, Any]], service: str
) -> None:
    c = container(manifests, service)
    # A fixed tag that `kind load` provides: no :latest, which kind and minikube try to pull.
    assert c["image"] == f"shop/{service}:dev"
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert c["ports"] == [{"name": "http", "containerPort": port(service)}]
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(c["resources"][kind]), kind
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    pod = manifests[("Deployment", service)]["spec"]["template"]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port(service))


@pytest.mark.parametrize("service", APP_SERVICES)
def test_k8s_env_matches_compose(
    manifests: dict[tuple[str, str], dict[str, Any]], compose: dict[str, Any], service: str
) -> None:
    """Same variables as compose (values differ only where the cluster differs)."""
    c = container(manifests, service)
    config = manifests[("ConfigMap", "shop-config")]["data"]
    assert c["envFrom"] == [{"configMapRef": {"name": "shop-config"}}]
    env = {e["name"]: e for e in c["env"]}
    available = set(env) | set(config)
    expected = set(compose_env(compose, service)) - {"OTEL_BSP_SCHEDULE_DELAY"}
    assert expected <= available, sorted(expected - available)
    for name in ("MONGO_URL", "AMQP_URL", "INTERNAL_TOKEN"):
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": "shop-secrets", "key": name}
    assert "TRUSTED_PROXIES" not in available
    # The base believes no proxy (an overlay names its ingress controller's pod CIDR).
    assert ("GATEWAY_TRUSTED_PROXIES" in available) == (service == "gateway")
    if service == "gateway":
        assert env["GATEWAY_TRUSTED_PROXIES"]["value"] == ""
    for key, value in compose_env(compose, service).items():
        if re.fullmatch(r"http://[a-z]+:\d+(/.*)?", value) and key in env:
            assert env[key]["value"] == value, key
    assert config["JWKS_URL"] == compose_env(compose, service)["JWKS_URL"]
    assert set(config) - {"PUBLIC_BASE_URL"} <= env_names(settings_class(service)) | NOT_SETTINGS


def test_mongo_and_rabbitmq_are_external_services(
    manifests: dict[tuple[str, str], dict[str, Any]],
) -> None:
    for name in ("mongodb", "rabbitmq", "smtp", "otel-collector"):
        assert manifests[("Service", name)]["spec"]["type"] == "ExternalName"
    assert not any(kind == "StatefulSet" for kind, _ in manifests)


# --- Kubernetes: images, autoscaling on queue depth, NetworkPolicy, Ingress ------------------

K8S = DEPLOY / "k8s"
# kind's default podSubnet: the dev overlay's GATEWAY_TRUSTED_PROXIES.
KIND_POD_SUBNET = "10.244.0.0/16"
PEER_URL = re.compile(r"http://(?P<host>[a-z-]+):(?P<port>\d+)")


def consumers() -> list[str]:
    """The services with a handler table, i.e. a queue of their own (docs/internals.md)."""
    found = []
    for service in APP_SERVICES:
        try:
            handlers = importlib.import_module(f"{service}_service.handlers")
        except ModuleNotFoundError:
            continue
        if handlers.HANDLERS:
            found.append(service)
    return found


def queue_names(scaled: dict[str, Any]) -> list[str]:
    return [
        trigger["metadata"]["queueName"]
        for trigger in scaled["spec"]["triggers"]
        if trigger["type"] == "rabbitmq"
    ]


def all_containers(docs: Any) -> list[dict[str, Any]]:
    return [
        c
        for d in docs
        if d["kind"] == "Deployment"
        for c in d["spec"]["template"]["spec"]["containers"]
    ]


def test_the_seven_data_services_are_the_consumers() -> None:
    assert sorted(consumers()) == sorted(set(APP_SERVICES) - {"gateway"})


@pytest.mark.parametrize("service", consumers())
def test_each_consumer_scales_on_the_depth_of_the_queue_it_declares(
    manifests: dict[tuple[str, str], dict[str, Any]], service: str
) -> None:
    scaled = manifests[("ScaledObject", service)]
    assert ("HorizontalPodAutoscaler", service) not in manifests
    config = manifests[("ConfigMap", "shop-config")]["data"]
    declared = Names.of(
        bus_config(
            settings_class(service).model_construct(
                service_name=service, bus_prefix=config.get("BUS_PREFIX", "")
            )
        )
    ).queue
    assert queue_names(scaled) == [declared]
    (trigger,) = (t for t in scaled["spec"]["triggers"] if t["type"] == "rabbitmq")
    assert trigger["metadata"]["mode"] == "QueueLength"
    assert int(trigger["metadata"]["value"]) > 0
    auth = manifests[("TriggerAuthentication", trigger["authenticationRef"]["name"])]
    # the broker URL the services use, from their Secret: never written into a manifest
    assert auth["spec"]["secretTargetRef"] == [
        {"parameter": "host", "name": "shop-secrets", "key": "AMQP_URL"}
    ]
    assert "host" not in trigger["metadata"] and "hostFromEnv" not in trigger["metadata"]


def test_no_image_floats(manifests: dict[tuple[str, str], dict[str, Any]]) -> None:
    for c in all_containers(manifests.values()):
        name, _, tag = c["image"].rpartition(":")
        assert name and tag and tag != "latest", c["image"]
        assert c["imagePullPolicy"] == "IfNotPresent", c["name"]
    assert "images" not in yaml.safe_load((BASE / "kustomization.yaml").read_text())


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A Kubernetes label selector applied to `labels` (an empty selector selects all)."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for e in selector.get("matchExpressions", []):
        key, op, values = e["key"], e["operator"], e.get("values", [])
        ok = {
            "In": labels.get(key) in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def callers(manifests: dict[tuple[str, str], dict[str, Any]], service: str) -> set[str]:
    """The services whose environment (their own or the shared ConfigMap) names `service`'s
    URL: the peers that call it over HTTP."""
    config = manifests[("ConfigMap", "shop-config")]["data"]
    found = set()
    for caller in APP_SERVICES:
        values = [e.get("value", "") for e in container(manifests, caller)["env"]]
        values += list(config.values())
        for value in values:
            for match in PEER_URL.finditer(str(value)):
                if match["host"] == service and caller != service:
                    assert int(match["port"]) == port(service), value
                    found.add(caller)
    return found


def pod_labels(docs: Any) -> dict[str, dict[str, str]]:
    """Workload name → the labels of its pods (Deployments and StatefulSets)."""
    return {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
        for d in docs
        if d["kind"] in ("Deployment", "StatefulSet")
    }


def admitted(docs: Any, target: str, ports: set[int | str]) -> tuple[set[str], set[str]]:
    """(workloads by name, namespaces by name) the NetworkPolicies among `docs` admit to any of
    `ports` of `target`'s pods."""
    workloads = pod_labels(docs)
    pods: set[str] = set()
    namespaces: set[str] = set()
    for policy in (d for d in docs if d["kind"] == "NetworkPolicy"):
        spec = policy["spec"]
        if not selects(spec["podSelector"], workloads[target]):
            continue
        assert "Ingress" in spec["policyTypes"]
        for rule in spec.get("ingress", []):
            rule_ports = {p["port"] for p in rule.get("ports", [])}
            if rule_ports and not rule_ports & ports:  # a rule without ports admits to all
                continue
            assert rule.get("from"), f"{policy['metadata']['name']} admits everyone"
            for peer in rule["from"]:
                if "namespaceSelector" in peer:
                    assert "podSelector" not in peer
                    names = peer["namespaceSelector"]["matchLabels"]
                    namespaces.add(names["kubernetes.io/metadata.name"])
                    continue
                pods |= {
                    w for w, labels in workloads.items() if selects(peer["podSelector"], labels)
                }
    return pods, namespaces


def test_ingress_is_denied_by_default(manifests: dict[tuple[str, str], dict[str, Any]]) -> None:
    deny = manifests[("NetworkPolicy", "default-deny-ingress")]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress"]}


@pytest.mark.parametrize("service", APP_SERVICES)
def test_network_policy_admits_the_gateway_and_the_callers_only(
    manifests: dict[tuple[str, str], dict[str, Any]], service: str
) -> None:
    pods, namespaces = admitted(manifests.values(), service, {port(service), "http"})
    if service == "gateway":
        assert pods == set()  # nothing in the namespace calls the gateway
        assert namespaces == {"ingress-nginx", "monitoring"}
    else:
        assert pods == {"gateway"} | callers(manifests, service)
        assert namespaces == {"monitoring"}  # Prometheus scrapes /metrics on the same port
    assert callers(manifests, "user") == set(APP_SERVICES) - {"user"}  # JWKS_URL: everyone


def test_the_ingress_routes_to_the_gateway_service(
    manifests: dict[tuple[str, str], dict[str, Any]],
) -> None:
    ingresses = [d for (kind, _), d in manifests.items() if kind == "Ingress"]
    assert [i["metadata"]["name"] for i in ingresses] == ["gateway"]
    (gateway_port,) = manifests[("Service", "gateway")]["spec"]["ports"]
    backends = [
        path["backend"]["service"]
        for rule in ingresses[0]["spec"]["rules"]
        for path in rule["http"]["paths"]
    ]
    assert backends and all(b["name"] == "gateway" for b in backends)
    assert all(b["port"] in ({"name": gateway_port["name"]}, {"number": 8000}) for b in backends)
    assert {p["path"] for r in ingresses[0]["spec"]["rules"] for p in r["http"]["paths"]} == {"/"}


def test_kind_files_build_load_and_publish_what_the_manifests_expect(
    manifests: dict[tuple[str, str], dict[str, Any]],
) -> None:
    script = (K8S / "kind-load.sh").read_text()
    listed = re.search(r"^SERVICES=\((?P<names>[a-z ]+)\)$", script, flags=re.MULTILINE)
    assert listed and sorted(listed["names"].split()) == sorted(APP_SERVICES)
    assert (
        '-t "shop/$service:dev"' in script
        and 'kind load docker-image "shop/$service:dev"' in script
    )
    cluster = yaml.safe_load((K8S / "kind-cluster.yaml").read_text())
    (mapping,) = cluster["nodes"][0]["extraPortMappings"]
    assert mapping["containerPort"] == 80 and mapping["listenAddress"] == "127.0.0.1"
    dev = (K8S / "overlays" / "dev" / "kustomization.yaml").read_text()
    assert f"PUBLIC_BASE_URL=http://localhost:{mapping['hostPort']}" in dev
    assert cluster.get("networking", {}).get("podSubnet", KIND_POD_SUBNET) == KIND_POD_SUBNET


def kustomize(overlay: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed; the structural checks of base/ stand in")
    result = subprocess.run(
        [kubectl, "kustomize", str(overlay)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def pod_env(docs: list[dict[str, Any]], deployment: dict[str, Any]) -> dict[str, str]:
    """The environment a Deployment's container gets: its ConfigMap, then its own env with
    the ConfigMap and Secret references resolved."""
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    env: dict[str, str] = {}
    for source in c["envFrom"]:
        env |= by_name[("ConfigMap", source["configMapRef"]["name"])]["data"]
    for entry in c["env"]:
        if "value" in entry:
            env[entry["name"]] = entry["value"]
            continue
        if ref := entry["valueFrom"].get("configMapKeyRef"):
            env[entry["name"]] = by_name[("ConfigMap", ref["name"])]["data"][ref["key"]]
            continue
        ref = entry["valueFrom"]["secretKeyRef"]
        data = by_name[("Secret", ref["name"])]["data"]
        assert ref["key"] in data, f"{entry['name']}: the Secret has no {ref['key']}"
        env[entry["name"]] = base64.b64decode(data[ref["key"]]).decode()
    return env


@pytest.fixture(scope="module")
def dev_overlay(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, Any]], Path]:
    """The dev overlay built by kustomize, from the Secret inputs exactly as
    `python scripts/deploy_env.py` writes them; and the deploy directory they are in."""
    tmp_path = tmp_path_factory.mktemp("deploy")
    copy = tmp_path / "k8s"
    shutil.copytree(DEPLOY / "k8s", copy)
    assert deploy_env.main(["--deploy-dir", str(tmp_path)]) == 0
    return kustomize(copy / "overlays" / "dev"), tmp_path


def test_kustomize_builds_the_dev_overlay(
    dev_overlay: tuple[list[dict[str, Any]], Path],
) -> None:
    docs, tmp_path = dev_overlay
    kinds = [d["kind"] for d in docs]
    apps = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] in PORTS]
    autoscalers = kinds.count("HorizontalPodAutoscaler") + kinds.count("ScaledObject")
    assert len(apps) == autoscalers == len(PORTS)
    assert all(
        d["metadata"].get("namespace") == "shop-dev" for d in docs if d["kind"] != "Namespace"
    )
    secret = next(d for d in docs if d["metadata"]["name"].startswith("shop-secrets-"))
    user = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "user")
    refs = {
        e["valueFrom"]["secretKeyRef"]["name"]
        for e in user["spec"]["template"]["spec"]["containers"][0]["env"]
        if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]
    }
    assert refs == {secret["metadata"]["name"]}  # the generated name, hash suffix included
    # Every service's settings start under SHOP_ENV=prod from what the cluster would give it
    # (the dev overlay itself says dev): credentials in both URLs, the internal credential.
    token = deploy_env.read_env(tmp_path / ".env")["INTERNAL_TOKEN"]
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    for deployment in apps:
        service = deployment["metadata"]["name"]
        env = pod_env(docs, deployment) | {"SHOP_ENV": "prod"}
        with mock.patch.dict(os.environ, env, clear=True):
            settings = settings_class(service)()
        assert settings.internal_token.get_secret_value() == token, service
        # KEDA watches the queue this service declares, under the settings the pod gets.
        scaled = by_name.get(("ScaledObject", service))
        if scaled is not None:
            (queue,) = queue_names(scaled)
            assert queue == Names.of(bus_config(settings)).queue, service
    # KEDA signs in with the generated Secret (its hashed name reaches the KEDA kinds too), and
    # from its own namespace: the broker's name must carry the namespace the overlay uses.
    (auth,) = (d for d in docs if d["kind"] == "TriggerAuthentication")
    ((ref,),) = [auth["spec"]["secretTargetRef"]]
    assert ref["name"] == secret["metadata"]["name"]
    host = urlsplit(base64.b64decode(secret["data"][ref["key"]]).decode()).hostname
    namespace = auth["metadata"]["namespace"]
    assert namespace == deploy_env.DEV_NAMESPACE
    assert host == f"rabbitmq.{namespace}.svc" and ("Service", "rabbitmq") in by_name
    gateway = pod_env(docs, by_name[("Deployment", "gateway")])
    assert gateway["GATEWAY_TRUSTED_PROXIES"] == KIND_POD_SUBNET
    assert "host" not in by_name[("Ingress", "gateway")]["spec"]["rules"][0]


# What each piece of the dev overlay's own infrastructure serves on, and the setting that names it.
INFRA_PORTS = {"mongodb": 27017, "rabbitmq": 5672, "smtp": 1025, "otel-collector": 4318}


def named_hosts(env: dict[str, str]) -> set[str]:
    """The dev infrastructure a pod's environment names: in URLs, or as a bare host
    (NOTIFY_SMTP_HOST)."""
    hosts = set()
    for value in env.values():
        host = urlsplit(value).hostname if "://" in value else value
        if host and host.endswith(f".{deploy_env.DEV_NAMESPACE}.svc"):
            host = host.split(".")[0]  # the same Service, namespace-qualified (AMQP_URL)
        if host in INFRA_PORTS:
            hosts.add(host)
    return hosts


def test_dev_infrastructure_admits_its_clients_only(
    dev_overlay: tuple[list[dict[str, Any]], Path],
) -> None:
    """MongoDB, RabbitMQ, the SMTP sink and the collector run in the dev namespace, behind the
    base's deny-all: each admits exactly the pods whose settings name it (and RabbitMQ KEDA)."""
    docs, _ = dev_overlay
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    apps = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] in PORTS]
    clients: dict[str, set[str]] = {name: set() for name in INFRA_PORTS}
    for deployment in apps:
        for host in named_hosts(pod_env(docs, deployment)):
            clients[host].add(deployment["metadata"]["name"])
    assert clients["mongodb"] == clients["rabbitmq"] == set(PORTS)
    assert clients["smtp"] == {"notify"}
    for name, service_port in INFRA_PORTS.items():
        service = by_name[("Service", name)]["spec"]
        assert "externalName" not in service and service.get("type", "ClusterIP") == "ClusterIP"
        assert service["ports"][0]["port"] == service_port
        assert selects({"matchLabels": service["selector"]}, pod_labels(docs)[name])
        pods, namespaces = admitted(docs, name, {service_port})
        assert pods == clients[name], name
        assert namespaces == ({"keda"} if name == "rabbitmq" else set()), name
        # the UIs (RabbitMQ's, Mailpit's, Jaeger's) are for kubectl port-forward only
        for other in service["ports"][1:]:
            assert admitted(docs, name, {other["port"]}) == (set(), set()), other
    # the Secret volumes and env of the infrastructure name the generated Secret
    infra_secret = next(d for d in docs if d["metadata"]["name"].startswith("shop-infra-"))
    assert set(infra_secret["data"]) == {*deploy_env.INFRA_VARIABLES, "mongo-keyfile"}


def test_dev_infrastructure_runs_the_images_compose_runs(
    dev_overlay: tuple[list[dict[str, Any]], Path], compose: dict[str, Any]
) -> None:
    docs, _ = dev_overlay
    same = {
        "mongodb": "mongo",
        "rabbitmq": "rabbitmq",
        "smtp": "mailpit",
        "otel-collector": "jaeger",
    }
    images = {
        d["metadata"]["name"]: {c["image"] for c in d["spec"]["template"]["spec"]["containers"]}
        for d in docs
        if d["kind"] in ("Deployment", "StatefulSet")
    }
    for workload, service in same.items():
        assert images[workload] == {compose["services"][service]["image"]}, workload
