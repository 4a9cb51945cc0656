"""The RS256 key the user service signs access tokens with.

`USER_JWT_PRIVATE_KEY_PATH` names a PEM file (required with `SHOP_ENV=prod`). Without it, local
mode (`dev`) generates a key once and keeps it under `USER_KEYS_DIR` (`.run/keys/`), so that a
restarted service still accepts the tokens it issued; tests (`test`) use a fresh in-memory key.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from kit.auth.signing import SigningKey
from user_service.settings import UserSettings

DEV_KEY_FILE = "user-signing-key.pem"


def load_signing_key(settings: UserSettings) -> SigningKey:
    """The configured key, else the local one (created on first use), else a fresh one."""
    if settings.jwt_private_key_path is not None:
        return SigningKey.from_pem(settings.jwt_private_key_path.read_bytes())
    if settings.env == "test":
        return SigningKey.generate()
    return local_key(settings.keys_dir / DEV_KEY_FILE)


def local_key(path: Path) -> SigningKey:
    """The key stored at `path`; generated and stored (owner-only) when there is none.

    Two processes starting together must end up with the same key: each writes a private
    temporary file and links it into place; the one whose link fails reads the winner's.
    """
    if path.exists():
        return SigningKey.from_pem(path.read_bytes())
    path.parent.mkdir(parents=True, exist_ok=True)
    key = SigningKey.generate()
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(key.private_pem())
        os.link(tmp, path)
    except FileExistsError:
        return SigningKey.from_pem(path.read_bytes())
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return key


def load_previous_keys(settings: UserSettings) -> list[SigningKey]:
    """Retired keys whose public halves stay in the JWKS until their tokens have expired."""
    return [SigningKey.from_pem(path.read_bytes()) for path in settings.jwt_previous_key_paths]
