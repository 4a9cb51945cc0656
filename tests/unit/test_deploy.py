"""deploy/: the compose file, the Dockerfile and the Kubernetes manifests, checked structurally.

No Docker engine runs where these tests run, so nothing here builds or starts a container; the
checks read the files and compare them with the code: every service present, health checks and
probes, the environment each service's settings read (and what the local runner passes them,
scripts/runner/config.py), images from the workspace Dockerfile, the published ports. Where the
tools exist, `docker compose config` and `kubectl kustomize` run too (skipped with the reason
otherwise).
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from pydantic import AliasChoices

from kit.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
sys.path.insert(0, str(ROOT / "scripts"))
import deploy_env  # noqa: E402
from runner.config import SERVICES, child_env, parse_args  # noqa: E402

pytestmark = pytest.mark.unit

PORTS = dict(SERVICES)  # name → offset from 8000
APP_SERVICES = tuple(PORTS)
INFRA = {"mongo", "rabbitmq", "mailpit", "jaeger"}
# Host port → the container that publishes it: nothing else may reach the host.
PUBLISHED = {8000: "gateway", 8025: "mailpit", 16686: "jaeger", 15672: "rabbitmq"}
# Read by Python or the OpenTelemetry SDK, not by a settings class.
NOT_SETTINGS = {"PYTHONUNBUFFERED", "OTEL_BSP_SCHEDULE_DELAY"}
# The runner's dev-only key directory; containers get a real key file instead.
RUNNER_ONLY = {"USER_KEYS_DIR"}


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
def compose() -> dict[str, Any]:
    raw = yaml.safe_load((DEPLOY / "compose.yaml").read_text())  # merges YAML anchors (<<)
    assert isinstance(raw, dict)
    return dict(interpolate(raw, dotenv_values()))


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
    assert "rabbitmq-diagnostics" in services["rabbitmq"]["healthcheck"]["test"]
    assert services["rabbitmq"]["image"].endswith("-management")
    assert services["mailpit"]["healthcheck"]["test"]
    for service in APP_SERVICES:
        env = compose_env(compose, service)
        assert env["MONGO_URL"] == f"mongodb://mongo:27017/?replicaSet={replset}"
        assert env["AMQP_URL"].endswith("@rabbitmq:5672/")
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"


def test_only_the_gateway_and_the_three_uis_are_published(compose: dict[str, Any]) -> None:
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
def test_settings_accept_the_compose_environment(compose: dict[str, Any], service: str) -> None:
    # SHOP_ENV=prod: kit refuses placeholder secrets, user needs its key path, payment's budget.
    env = compose_env(compose, service)
    assert env["SHOP_ENV"] == "prod"
    with mock.patch.dict(os.environ, env, clear=True):
        settings = settings_class(service)()
    assert settings.port == port(service)
    assert settings.host == "0.0.0.0"


def test_deploy_env_creates_secrets_once(tmp_path: Path) -> None:
    (tmp_path / "k8s/overlays/dev").mkdir(parents=True)
    assert deploy_env.main(["--deploy-dir", str(tmp_path)]) == 0
    first = deploy_env.read_env(tmp_path / ".env")
    key = (tmp_path / deploy_env.KEY_FILE).read_bytes()
    assert set(first) == set(deploy_env.VARIABLES)
    assert first["RABBITMQ_PASSWORD"] != first["SHOP_ADMIN_PASSWORD"]
    assert (tmp_path / ".env").stat().st_mode & 0o077 == 0
    assert key.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert deploy_env.main(["--deploy-dir", str(tmp_path)]) == 0
    assert deploy_env.read_env(tmp_path / ".env") == first
    assert (tmp_path / deploy_env.KEY_FILE).read_bytes() == key
    overlay = deploy_env.read_env(tmp_path / "k8s/overlays/dev/secrets.env")
    assert overlay["AMQP_URL"] == f"amqp://shop:{first['RABBITMQ_PASSWORD']}@rabbitmq:5672/"
    assert (tmp_path / "k8s/overlays/dev/jwt-private-key.pem").read_bytes() == key


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
def test_each_service_has_deployment_service_hpa_and_pdb(
    manifests: dict[tuple[str, str], dict[str, Any]], service: str
) -> None:
    deployment = manifests[("Deployment", service)]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    svc = manifests[("Service", service)]["spec"]
    assert svc["selector"] == selector
    assert svc["ports"][0]["port"] == port(service)
    hpa = manifests[("HorizontalPodAutoscaler", service)]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": service}
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"
    assert 1 <= hpa["minReplicas"] < hpa["maxReplicas"]
    pdb = manifests[("PodDisruptionBudget", service)]["spec"]
    assert pdb["selector"]["matchLabels"] == selector
    assert "minAvailable" in pdb or "maxUnavailable" in pdb


@pytest.mark.parametrize("service", APP_SERVICES)
def test_each_deployment_has_probes_resources_and_runs_unprivileged(
    manifests: dict[tuple[str, str], dict[str, Any]], service: str
) -> None:
    c = container(manifests, service)
    assert c["image"] == f"shop-{service}"
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
    for name in ("MONGO_URL", "AMQP_URL"):
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": "shop-secrets", "key": name}
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


def test_kustomize_builds_the_dev_overlay(tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed; the structural checks of base/ stand in")
    copy = tmp_path / "k8s"
    shutil.copytree(DEPLOY / "k8s", copy)
    overlay = copy / "overlays" / "dev"
    (overlay / "secrets.env").write_text("MONGO_URL=mongodb://m/\nAMQP_URL=amqp://a/\n")
    (overlay / "jwt-private-key.pem").write_text("not a key\n")
    result = subprocess.run(
        [kubectl, "kustomize", str(overlay)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    kinds = [d["kind"] for d in docs]
    assert kinds.count("Deployment") == kinds.count("HorizontalPodAutoscaler") == 7
    assert all(
        d["metadata"].get("namespace") == "shop-dev" for d in docs if d["kind"] != "Namespace"
    )
    secret = next(d for d in docs if d["kind"] == "Secret")
    user = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "user")
    refs = {
        e["valueFrom"]["secretKeyRef"]["name"]
        for e in user["spec"]["template"]["spec"]["containers"][0]["env"]
        if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]
    }
    assert refs == {secret["metadata"]["name"]}  # the generated name, hash suffix included
