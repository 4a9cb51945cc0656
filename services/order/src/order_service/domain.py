"""Pure rules of the order service (no I/O, no framework imports).

What will live here: the `Order` aggregate and its state machine (PENDING → … → CONFIRMED,
REJECTED or CANCELLED, with the allowed transitions and their deadlines), the pre-order check
(profile complete, address, payment method, availability), totals in minor units with promotions,
the partial-fulfilment decision (ask, accept, cancel) and the approval threshold. The aggregate
records the events the saga needs (`OrderPlaced`, `PaymentRequested`, …) and the timeline entries.
"""
