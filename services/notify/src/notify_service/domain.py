"""Pure rules of the notify service (no I/O, no framework imports).

What will live here: which event becomes which notification (`WELCOME`, `ORDER_CONFIRMED`,
`PAYMENT_FAILED`, …), on which channels given the user's preferences (in-app always, email by
default, SMS and push when chosen), the message texts, and the idempotency key that makes a
redelivered event never send twice.
"""
