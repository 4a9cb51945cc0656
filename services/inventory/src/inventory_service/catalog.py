"""Old import paths of the catalogue's pieces, for `seed.py` alone.

The catalogue's rules live in `domain` (`NewProduct`) and `store` (the document), its commands in
`commands`. `seed.py` moves out of the runtime package in this same issue; delete this module then.
"""

from __future__ import annotations

from inventory_service.commands import add_products as add_products
from inventory_service.commands import seed_products as seed_products
from inventory_service.domain import NewProduct as NewProduct
