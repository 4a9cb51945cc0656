"""Event handlers of the payment service, and its handler table.

`HANDLERS` at the bottom is the only place the service's subscriptions appear: the consumer binds
the service's queue to the routing keys of its keys.
"""

from __future__ import annotations

from bus import HandlerTable

HANDLERS: HandlerTable = {}
