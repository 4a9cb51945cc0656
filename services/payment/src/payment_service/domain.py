"""Pure rules of the payment service (no I/O, no framework imports).

What will live here: the `Payment` aggregate (attempts, authorize, capture, void, refund; one
payment per order attempt, never charged twice), the fraud rules (flag what is unusual, never a
customer's ordinary traffic), the sandbox provider's test methods and the retry policy that
separates transient provider errors (retried with backoff) from declines (final).
"""
