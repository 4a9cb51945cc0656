"""What a delivery's uncommitted run decided and which provider calls it made.

The payment's records are written in the step's one write of the payment, so a run whose write
does not land (the payment moved meanwhile: `Conflict`) loses the record of its provider calls.
Its rerun calls again with the same idempotency keys and the processor answers each key as
before, so nothing is charged twice: usually the memory below only spares those calls, the card
lookup and the fraud rules. It matters when the order ended while the first run was calling (a
cancellation committed in between): the rerun finds the payment closed and, not knowing that a
hold exists, would leave it in place. With the first run's calls in hand it voids the hold.

In-process memory, bounded: a process killed before its commit loses it; its redelivery then
calls again by the same keys (README, "Transaction boundary").
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from kit.mongo import Doc

# Deliveries remembered: far more than are ever in flight at once (the consumer's prefetch), few
# enough to be nothing in memory.
CAPACITY = 1024


@dataclass
class Run:
    """What a run settled before calling the processor (the payment's fields for this request,
    fraud verdict included, and the card's token), and every call it made, in order."""

    fields: Doc
    token: str
    calls: list[Doc] = field(default_factory=list)

    @property
    def authorization_id(self) -> str | None:
        """The hold the processor granted to these calls, if it did."""
        return next(
            (c["authorization_id"] for c in self.calls if c["outcome"] == "authorized"), None
        )


class InFlight:
    """Per delivery (envelope id), the run that has not committed yet."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self._capacity = capacity
        self._runs: OrderedDict[str, Run] = OrderedDict()

    def get(self, event_id: str) -> Run | None:
        return self._runs.get(event_id)

    def start(self, event_id: str, fields: Doc, token: str) -> Run:
        """Remember a run about to call the processor (its calls are appended as they answer)."""
        run = self._runs[event_id] = Run(dict(fields), token)
        self._runs.move_to_end(event_id)
        while len(self._runs) > self._capacity:
            self._runs.popitem(last=False)
        return run

    def forget(self, event_id: str) -> None:
        """The delivery committed: what its run did is in the payment now."""
        self._runs.pop(event_id, None)

    def __len__(self) -> int:
        return len(self._runs)
