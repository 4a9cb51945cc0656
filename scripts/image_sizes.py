"""The size of each service's image: from `docker image ls` where a Docker engine answers,
otherwise estimated by installing what deploy/Dockerfile installs.

    python scripts/image_sizes.py            # a Markdown table, one row per service

The estimate runs the Dockerfile's own `uv sync` (its flags read from the Dockerfile, bytecode
compiled, files copied, not linked) into a temporary virtualenv per service, sums the sizes of
its files, and adds the built web front end (web/dist, copied into every image) and the base
image. The base cannot be measured without an engine: BASE_IMAGE_MB approximates the
uncompressed size `docker image ls` shows for python:3.13-slim (linux/amd64), not measured here
(no engine, no registry access); pass --base-mb to use a measured figure.

The same helpers answer "what goes into an image" for tests/unit/test_deploy.py: `install_set`
exports the locked install set of one service with the Dockerfile's flags (`uv export`).
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
WEB_DIST = ROOT / "web" / "dist"
BASE_IMAGE = "python:3.13-slim"
BASE_IMAGE_MB = 125.0
MB = 1_000_000  # docker reports decimal megabytes
# Image names: compose builds shop-<service>:latest, the Kubernetes manifests use shop/<service>.
IMAGE_NAME = re.compile(r"^shop[-/](?P<service>[a-z]+)$")

sys.path.insert(0, str(ROOT / "scripts"))
from runner.config import SERVICE_NAMES  # noqa: E402


@functools.cache
def uv() -> str:
    """The uv that `make` uses (scripts/ensure-uv.sh installs one when none answers)."""
    result = subprocess.run(
        [str(ROOT / "scripts" / "ensure-uv.sh")], capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def dockerfile_sync_flags(dockerfile: Path = DOCKERFILE) -> list[str]:
    """The flags of the Dockerfile's last `uv sync` (the one that installs the service itself),
    `${SERVICE}` left in place."""
    syncs = re.findall(r"uv sync (.*)", dockerfile.read_text())
    if not syncs:
        raise ValueError(f"{dockerfile} runs no `uv sync`")
    return shlex.split(syncs[-1].rstrip("\\ "))


def for_service(flags: Sequence[str], service: str) -> list[str]:
    return [flag.replace("${SERVICE}", service) for flag in flags]


def install_set(service: str, flags: Sequence[str] | None = None) -> dict[str, str]:
    """Distribution name → version (or the workspace path) of everything an image of `service`
    installs: `uv export` from uv.lock with the Dockerfile's sync flags."""
    flags = dockerfile_sync_flags() if flags is None else flags
    result = subprocess.run(
        [uv(), "export", *for_service(flags, service), "--format", "pylock.toml", "--quiet"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    lock = tomllib.loads(result.stdout)
    found: dict[str, str] = {}
    for package in lock["packages"]:
        where = package.get("version") or package.get("directory", {}).get("path", "?")
        found[str(package["name"])] = str(where)
    return found


def tree_bytes(path: Path) -> int:
    """What the files under `path` weigh in an image layer (file sizes, not disk blocks)."""
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() or p.is_symlink())


def venv_bytes(service: str, *, uv_path: str, python: str) -> int:
    """Install the service exactly as the Dockerfile's builder does and weigh the virtualenv."""
    with tempfile.TemporaryDirectory(prefix=f"image-{service}-") as tmp:
        env = os.environ | {
            "UV_PROJECT_ENVIRONMENT": str(Path(tmp) / "venv"),
            "UV_COMPILE_BYTECODE": "1",
            "UV_LINK_MODE": "copy",
            "UV_PYTHON_DOWNLOADS": "never",
            "UV_PYTHON": python,
        }
        subprocess.run(
            [uv_path, "sync", *for_service(dockerfile_sync_flags(), service), "--quiet"],
            check=True,
            cwd=ROOT,
            env=env,
        )
        return tree_bytes(Path(tmp) / "venv")


def parse_image_ls(output: str) -> dict[str, str]:
    """`docker image ls --format '{{.Repository}}:{{.Tag}}\\t{{.Size}}'` → "service (image)" →
    size, for the shop's images only."""
    sizes: dict[str, str] = {}
    for line in output.splitlines():
        image, _, size = line.partition("\t")
        match = IMAGE_NAME.match(image.rsplit(":", 1)[0])
        if match and match["service"] in SERVICE_NAMES:
            sizes[f"{match['service']} ({image})"] = size
    return sizes


def engine_sizes() -> dict[str, str] | None:
    """The shop's images and their sizes as `docker image ls` prints them (parse_image_ls), or
    None without an engine."""
    docker = shutil.which("docker")
    if docker is None:
        return None
    result = subprocess.run(
        [docker, "image", "ls", "--format", "{{.Repository}}:{{.Tag}}\t{{.Size}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return None
    return parse_image_ls(result.stdout)


def estimate(services: Sequence[str], base_mb: float) -> list[tuple[str, float, float, float]]:
    """(service, virtualenv MB, web MB, image MB) per service."""
    uv_path = uv()
    python = str(Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}")
    web_mb = tree_bytes(WEB_DIST) / MB if WEB_DIST.is_dir() else 0.0
    rows = []
    for service in services:
        venv_mb = venv_bytes(service, uv_path=uv_path, python=python) / MB
        rows.append((service, venv_mb, web_mb, base_mb + venv_mb + web_mb))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("services", nargs="*", default=list(SERVICE_NAMES))
    parser.add_argument("--base-mb", type=float, default=BASE_IMAGE_MB)
    parser.add_argument("--estimate", action="store_true", help="estimate even with an engine")
    args = parser.parse_args(argv)
    unknown = set(args.services) - set(SERVICE_NAMES)
    if unknown:
        parser.error(f"unknown services {sorted(unknown)}")

    sizes = None if args.estimate else engine_sizes()
    if sizes:
        print("| image | size (docker image ls) |\n| --- | ---: |")
        for image, size in sorted(sizes.items()):
            print(f"| {image} | {size} |")
        return 0
    if not WEB_DIST.is_dir():
        print("web/dist is not built (make web): counted as 0 MB", file=sys.stderr)
    print(f"| service | virtualenv MB | web MB | image MB (+ {BASE_IMAGE} {args.base_mb:g} MB) |")
    print("| --- | ---: | ---: | ---: |")
    for service, venv_mb, web_mb, image_mb in estimate(args.services, args.base_mb):
        print(f"| {service} | {venv_mb:.1f} | {web_mb:.1f} | {image_mb:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
