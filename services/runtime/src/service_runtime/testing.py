"""Test doubles for the service runtime (style.md: fakes in one place, not mocks)."""

from __future__ import annotations


class NullBus:
    """A bus that starts, stops and reports readiness without a broker."""

    def __init__(self, *, ready: bool = True) -> None:
        self.started = False
        self.stopped = False
        self._ready = ready

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    def ready(self) -> bool:
        return self.started and not self.stopped and self._ready
