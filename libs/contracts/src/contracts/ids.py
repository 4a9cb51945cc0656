"""Time-ordered identifiers (UUIDv7, RFC 9562): ids sort by creation time, keeping indexes tight."""

from __future__ import annotations

import os
import threading
import time
import uuid

_RAND_A_MAX = 0xFFF
_lock = threading.Lock()
_last_ms = -1
_last_rand_a = 0


def uuid7() -> uuid.UUID:
    """A UUIDv7: 48 bits of Unix milliseconds, version, a 12-bit counter, 62 random bits.

    Ids made in the same process are strictly increasing (RFC 9562 §6.2, method 1): within one
    millisecond `rand_a` counts up from a random start, so sorting by id is sorting by creation.
    """
    global _last_ms, _last_rand_a
    rand = int.from_bytes(os.urandom(10), "big")
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last_ms:
            # Top bit clear leaves at least 2048 increments before the counter overflows.
            rand_a = (rand >> 62) & 0x7FF
        else:
            # Same millisecond, or the clock stepped back: keep counting from the last id.
            ms = _last_ms
            rand_a = _last_rand_a + 1
            if rand_a > _RAND_A_MAX:
                ms += 1
                rand_a = (rand >> 62) & 0x7FF
        _last_ms, _last_rand_a = ms, rand_a
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= rand_a << 64
    value |= 0b10 << 62  # variant
    value |= rand & ((1 << 62) - 1)  # rand_b, 62 bits
    return uuid.UUID(int=value)


def new_id() -> str:
    """A fresh UUIDv7 as its canonical string, used for event, order and row ids."""
    return str(uuid7())
