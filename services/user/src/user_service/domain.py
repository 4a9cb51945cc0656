"""Pure rules of the user service (no I/O, no framework imports).

What will live here: the `User` aggregate and its invariants (email and username normalised,
password strength, profile completeness from a default address and a payment method, default
address and payment method moves, role changes, soft deletion), the refresh-token family rules
(rotation, reuse revokes the family) and the login lockout window. Aggregates record the events
they raise (`UserRegistered`, `UserProfileUpdated`, …); handlers store them in the outbox.
"""
