"""Who is calling: the verified claims of an access token that routes need."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

type UserRole = Literal["Customer", "Manager", "Admin"]
ROLES: tuple[str, ...] = get_args(UserRole.__value__)


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller, from a verified token: `sub`, `role`, `jti` and `ver` (its token version)."""

    user_id: str
    role: UserRole
    token_id: str | None = None
    token_version: int = 0

    @property
    def is_admin(self) -> bool:
        return self.role == "Admin"
