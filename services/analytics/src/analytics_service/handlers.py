"""Event handlers of the analytics service, and its handler table.

`HANDLERS` at the bottom is the only place the service's subscriptions appear. Analytics keeps the
raw event store and the audit trail, so its queue also receives every event: `BINDINGS` adds the
`#` binding through the bus config's extra bindings.
"""

from __future__ import annotations

from bus import HandlerTable

BINDINGS: tuple[str, ...] = ("#",)

HANDLERS: HandlerTable = {}
