"""The Admin and Manager of a local run, so a newcomer can open every console after `make run`.

The user service creates the accounts named by `SHOP_ADMIN_EMAIL`/`SHOP_ADMIN_PASSWORD` and
`SHOP_MANAGER_EMAIL`/`SHOP_MANAGER_PASSWORD` at start-up (services/user/README.md, "Bootstrap
accounts"). In dev, what the environment leaves unset is generated once into
`<run dir>/accounts.env` (owner-only, the same dotenv form and generators as `make up`'s
deploy/.env) and read back on every later run, so a persistent Mongo (`--mongo-path`) keeps
accounts whose passwords still work. A variable set in the environment wins over the file.

The passwords go to the user service's environment and to the runner's banner (once the system
is up, on the developer's own terminal) and nowhere else: never to a log line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import deploy_env

ACCOUNTS_FILE = "accounts.env"
# Role → the prefix of its two variables.
ROLES: tuple[tuple[str, str], ...] = (("Admin", "SHOP_ADMIN"), ("Manager", "SHOP_MANAGER"))
VARIABLES: tuple[str, ...] = tuple(
    f"{prefix}_{part}" for _, prefix in ROLES for part in ("EMAIL", "PASSWORD")
)
GENERATED: dict[str, Callable[[], str]] = {name: deploy_env.VARIABLES[name] for name in VARIABLES}
HEADER = """\
# The Admin and Manager of `make run` (scripts/runner/accounts.py), kept so they keep working.
# Variables set in the environment win. Delete this file for new passwords (with --mongo-path,
# delete the Mongo file too: an existing account keeps the password it was created with).
"""


@dataclass(frozen=True, slots=True)
class Account:
    role: str
    email: str
    # None when the password came from the environment: the developer knows it, and the
    # banner has no reason to repeat a secret it did not make.
    generated_password: str | None


@dataclass(frozen=True, slots=True)
class LocalAccounts:
    """What the user service is given, and what the banner tells."""

    env: dict[str, str]
    accounts: tuple[Account, ...]
    file: Path | None  # None: everything came from the environment

    def banner(self) -> list[str]:
        lines = ["accounts (sign in at /login):"]
        for account in self.accounts:
            _, prefix = next(r for r in ROLES if r[0] == account.role)
            secret = account.generated_password or f"the password in {prefix}_PASSWORD"
            lines.append(f"  {account.role:<8} {account.email}  {secret}")
        if self.file is not None:
            lines.append(f"  kept in {self.file} (owner-only; the environment's values win)")
        return lines


def local_accounts(
    run_dir: Path, environ: Mapping[str, str], *, generate: bool
) -> LocalAccounts | None:
    """The accounts of this run: the environment's variables, the rest from (or, with
    `generate`, the runner in dev, generated into) `run_dir/accounts.env`; None when the
    environment names only some and nothing may be generated."""
    given = {name: environ[name] for name in VARIABLES if environ.get(name)}
    path: Path | None = None
    values = dict(given)
    if len(given) < len(VARIABLES):
        if not generate:
            return None
        path = run_dir / ACCOUNTS_FILE
        run_dir.mkdir(parents=True, exist_ok=True)
        deploy_env.ensure_env(path, GENERATED, HEADER)
        path.chmod(0o600)  # also when an older copy was made readable by others
        values = {k: v for k, v in deploy_env.read_env(path).items() if k in GENERATED} | given
    accounts = tuple(
        Account(
            role=role,
            email=values[f"{prefix}_EMAIL"],
            generated_password=None
            if f"{prefix}_PASSWORD" in given
            else values[f"{prefix}_PASSWORD"],
        )
        for role, prefix in ROLES
    )
    return LocalAccounts(env=values, accounts=accounts, file=path)
