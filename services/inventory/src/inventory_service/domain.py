"""Pure rules of the inventory service (no I/O, no framework imports).

What will live here: the `Product` aggregate (catalogue fields, soft deletion, low-stock
threshold), the stock arithmetic that keeps available + reserved + committed = received, and the
reservation rules for an order (all, some or none of its lines; expiry; commit and release), which
decide between `StockReserved`, `StockPartiallyReserved` and `StockUnavailable`.
"""
