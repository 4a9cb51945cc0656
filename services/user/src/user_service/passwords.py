"""Password hashing with argon2id (argon2-cffi), off the event loop.

Unknown users are checked against a dummy hash made with the same parameters, so that "no such
user" takes as long as "wrong password" (no account enumeration by timing).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from user_service.settings import UserSettings


@dataclass
class Passwords:
    """Hash, verify, and tell when a stored hash was made with other parameters."""

    hasher: PasswordHasher = field(default_factory=lambda: PasswordHasher(type=Type.ID))
    _dummy: str | None = None

    @classmethod
    def from_settings(cls, settings: UserSettings) -> Passwords:
        return cls(
            PasswordHasher(
                time_cost=settings.argon2_time_cost,
                memory_cost=settings.argon2_memory_kib,
                parallelism=settings.argon2_parallelism,
                type=Type.ID,
            )
        )

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self.hasher.hash, password)

    async def verify(self, stored: str | None, password: str) -> bool:
        """True when `password` matches `stored`; with no stored hash, burn the same time."""
        if stored is None:
            if self._dummy is None:
                self._dummy = await self.hash("dummy password for timing")
            stored = self._dummy
            await asyncio.to_thread(self._check, stored, password)
            return False
        return await asyncio.to_thread(self._check, stored, password)

    def _check(self, stored: str, password: str) -> bool:
        try:
            return self.hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        return self.hasher.check_needs_rehash(stored)
