"""Pure rules of the analytics service (no I/O, no framework imports).

What will live here: the report maths over stored events (revenue of CONFIRMED orders, orders by
status, average order value, payment failure and partial fulfilment rates, top products, the
sign-up funnel), the audit entry built from an event's envelope and actor, recommendations (bought
together, same category, only purchasable products) and the promotion rules that grant codes.
"""
