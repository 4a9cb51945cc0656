"""The carrier port and the sandbox carrier (the only adapter: a fake of the outside world).

A real carrier's booking API takes an idempotency key and answers a label's tracking number;
`SandboxCarrier` does the same, offline: its numbers have the shape of a postal barcode (22
digits: the service prefix `94`, a 19-digit serial, a mod-10 check digit weighted 3-1 from the
right, as USPS IMpb numbers), unique per booking key (the serial is drawn from a hash of the key:
booking the same shipment again answers the same label, as an idempotent API would).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

SANDBOX_CARRIER = "SandboxPost"
SERVICE_PREFIX = "94"
SERIAL_DIGITS = 19


@dataclass(frozen=True, slots=True)
class Booking:
    """A parcel booked with a carrier: who carries it, and its tracking number."""

    carrier: str
    tracking_number: str


class Carrier(Protocol):
    """What the service needs of a carrier: book a parcel under an idempotency key."""

    name: str

    async def book(self, key: str) -> Booking: ...


def check_digit(body: str) -> int:
    """The mod-10 check digit of a numeric string (weights 3, 1, 3, … from the right)."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def is_tracking_number(value: str) -> bool:
    """Whether `value` is a well-formed sandbox tracking number (prefix, length, check digit)."""
    length = len(SERVICE_PREFIX) + SERIAL_DIGITS + 1
    return (
        len(value) == length
        and value.isdigit()
        and value.startswith(SERVICE_PREFIX)
        and check_digit(value[:-1]) == int(value[-1])
    )


class SandboxCarrier:
    """The sandbox carrier "SandboxPost": books at once, never refuses, never forgets a key."""

    name = SANDBOX_CARRIER

    async def book(self, key: str) -> Booking:
        digest = int.from_bytes(hashlib.sha256(f"{self.name}:{key}".encode()).digest())
        body = SERVICE_PREFIX + str(digest % 10**SERIAL_DIGITS).zfill(SERIAL_DIGITS)
        return Booking(self.name, body + str(check_digit(body)))
