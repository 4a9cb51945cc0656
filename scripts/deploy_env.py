"""Create the secrets `make up` needs, once: deploy/.env, the JWT signing key, Mongo's key file.

    python scripts/deploy_env.py [--deploy-dir deploy]

Nothing is overwritten: an existing `.env` keeps its values (a variable missing from it is added),
an existing key file is kept, so tokens stay valid and the bootstrap accounts keep their
passwords across `make down` / `make up`. Both are git-ignored (deploy/.gitignore).

- `deploy/.env`: the RabbitMQ password, MongoDB's root user (`MONGO_ROOT_USER`,
  `MONGO_ROOT_PASSWORD`), the internal credential every service and the gateway share
  (`INTERNAL_TOKEN`, kit.internal), the bootstrap Admin and Manager accounts
  (`SHOP_ADMIN_EMAIL`, `SHOP_ADMIN_PASSWORD`, `SHOP_MANAGER_*`), Grafana's admin password
  (`GRAFANA_ADMIN_PASSWORD`), `SHOP_ENV` (`prod`; `dev` seeds the demo catalogue), random values
  where they are secret.
- `deploy/secrets/jwt-private-key.pem`: the user service's RS256 key (3072 bits), mounted into
  its container as a compose secret. The directory is owner-only; the file is readable by the
  container's unprivileged user (a bind mount keeps the host's mode and owner).
- `deploy/secrets/mongo-keyfile`: the replica set's internal authentication key (a replica set
  with access control needs one), owner-only; the mongo container copies it for its own user.
- `deploy/k8s/overlays/dev/secrets.env` and `jwt-private-key.pem`: the same values for the dev
  overlay's `secretGenerator` (`kubectl apply -k deploy/k8s/overlays/dev`), rewritten each run;
  `infra.env` and `mongo-keyfile` for the MongoDB and RabbitMQ that overlay runs itself.
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ROOT = Path(__file__).resolve().parents[1]
KEY_FILE = "secrets/jwt-private-key.pem"
MONGO_KEY_FILE = "secrets/mongo-keyfile"
DEV_OVERLAY = "k8s/overlays/dev"
# The dev overlay's MongoDB and RabbitMQ (services `mongodb` and `rabbitmq` in its namespace).
DEV_NAMESPACE = "shop-dev"
DEV_MONGO_HOSTS = "mongodb:27017/?replicaSet=rs0&authSource=admin"
# Namespace-qualified: KEDA's operator reads queue depths with this URL from its own namespace.
DEV_RABBITMQ_HOST = f"rabbitmq.{DEV_NAMESPACE}.svc"
INFRA_VARIABLES = ("MONGO_ROOT_USER", "MONGO_ROOT_PASSWORD", "RABBITMQ_USER", "RABBITMQ_PASSWORD")


def _password() -> str:
    # URL-safe without escaping (it goes into AMQP_URL), long enough for any policy.
    return secrets.token_hex(16)


def _token() -> str:
    return secrets.token_urlsafe(32)


# Variable → how to make its value. Order is the file's order.
VARIABLES: dict[str, Callable[[], str]] = {
    "SHOP_ENV": lambda: "prod",
    "LOG_LEVEL": lambda: "INFO",
    "RABBITMQ_USER": lambda: "shop",
    "RABBITMQ_PASSWORD": _password,
    "MONGO_ROOT_USER": lambda: "shop",
    "MONGO_ROOT_PASSWORD": _password,
    "INTERNAL_TOKEN": _token,
    "SHOP_ADMIN_EMAIL": lambda: "admin@shop.local",
    "SHOP_ADMIN_PASSWORD": _password,
    "SHOP_MANAGER_EMAIL": lambda: "manager@shop.local",
    "SHOP_MANAGER_PASSWORD": _password,
    "GRAFANA_ADMIN_PASSWORD": _password,  # Grafana's `admin` (anyone may view the dashboards)
}

HEADER = """\
# Secrets and knobs of `make up` (deploy/compose.yaml), made by scripts/deploy_env.py.
# Never commit this file. SHOP_ENV=dev seeds the demo catalogue; prod refuses placeholders.
"""


def read_env(path: Path) -> dict[str, str]:
    """The variables of a dotenv file (KEY=value lines; comments and blanks skipped)."""
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, _, value = line.partition("=")
                values[key.strip()] = value.strip()
    return values


def ensure_env(
    path: Path, variables: Mapping[str, Callable[[], str]] = VARIABLES, header: str = HEADER
) -> list[str]:
    """Add the `variables` that `path` lacks (creating it owner-only, `header` first); the
    names added. `make run` keeps its generated accounts the same way (runner.accounts)."""
    existing = read_env(path)
    missing = [name for name in variables if name not in existing]
    if not missing:
        return []
    fresh = not path.exists()
    lines = [header] if fresh else []
    lines += [f"{name}={variables[name]()}\n" for name in missing]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as out:
        out.writelines(lines)
    return missing


def _write_once(path: Path, make: Callable[[], bytes], mode: int) -> bool:
    """Write `make()` at `path` (mode `mode`, in an owner-only directory) unless a file is
    there; True when it was made."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(make())
    tmp.chmod(mode)
    tmp.replace(path)
    return True


def _rsa_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _mongo_key() -> bytes:
    # mongod: 6 to 1024 characters of the base64 set; 756 random bytes make 1008.
    return base64.b64encode(secrets.token_bytes(756)) + b"\n"


def ensure_key(path: Path) -> bool:
    """Write a new RSA signing key at `path` unless one is there; True when it was made."""
    # The container runs as uid 10001, not the host user: the file must be readable by it; the
    # owner-only directory keeps other host users out.
    return _write_once(path, _rsa_pem, 0o644)


def ensure_mongo_key(path: Path) -> bool:
    """Write a new replica-set key file at `path` unless one is there; True when it was made.
    Owner-only: the mongo container reads it as root and copies it for its mongodb user."""
    return _write_once(path, _mongo_key, 0o600)


def mongo_url(env: dict[str, str], hosts: str) -> str:
    """A Mongo URL with the root user's credentials (hex and fixed names: nothing to escape)."""
    return f"mongodb://{env['MONGO_ROOT_USER']}:{env['MONGO_ROOT_PASSWORD']}@{hosts}"


def write_dev_overlay(deploy: Path, env: dict[str, str]) -> None:
    """The dev overlay's Secret inputs, from the same values as compose's."""
    overlay = deploy / DEV_OVERLAY
    amqp = f"amqp://{env['RABBITMQ_USER']}:{env['RABBITMQ_PASSWORD']}@{DEV_RABBITMQ_HOST}:5672/"
    values = {
        "MONGO_URL": mongo_url(env, DEV_MONGO_HOSTS),
        "AMQP_URL": amqp,
        "INTERNAL_TOKEN": env["INTERNAL_TOKEN"],
    }
    values |= {k: v for k, v in env.items() if k.startswith(("SHOP_ADMIN_", "SHOP_MANAGER_"))}
    _write_private(overlay / "secrets.env", _dotenv(values))
    # The accounts the overlay's own MongoDB and RabbitMQ create (not given to the services).
    _write_private(overlay / "infra.env", _dotenv({k: env[k] for k in INFRA_VARIABLES}))
    _write_private(overlay / "jwt-private-key.pem", (deploy / KEY_FILE).read_bytes())
    _write_private(overlay / "mongo-keyfile", (deploy / MONGO_KEY_FILE).read_bytes())


def _dotenv(values: dict[str, str]) -> bytes:
    return "".join(f"{k}={v}\n" for k, v in values.items()).encode()


def _write_private(path: Path, content: bytes) -> None:
    """Rewrite `path` owner-only (its mode set at creation, never readable by others)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(content)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--deploy-dir", type=Path, default=ROOT / "deploy")
    args = parser.parse_args(argv)
    deploy: Path = args.deploy_dir
    env_file = deploy / ".env"
    added = ensure_env(env_file)
    if added:
        print(f"{env_file}: wrote {', '.join(added)} (the bootstrap passwords are in there)")
    if ensure_key(deploy / KEY_FILE):
        print(f"{deploy / KEY_FILE}: new JWT signing key")
    if ensure_mongo_key(deploy / MONGO_KEY_FILE):
        print(f"{deploy / MONGO_KEY_FILE}: new MongoDB replica-set key file")
    if (deploy / DEV_OVERLAY).is_dir():
        write_dev_overlay(deploy, read_env(env_file))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
