"""The demo catalogue for local mode: realistic products in a few categories, with fixed ids."""

from __future__ import annotations

import uuid

from inventory_service.catalog import NewProduct

# uuid5 of the product's name under this namespace: the same id on every start, so seeding is
# idempotent and a restarted service never duplicates the catalogue.
SEED_NAMESPACE = uuid.UUID("6f1d2c3e-5b0a-4e2f-9a8b-1c2d3e4f5a6b")

# (category, name, description, price in cents, stock)
_CATALOGUE: list[tuple[str, str, str, int, int]] = [
    ("electronics", "Wireless Earbuds", "Bluetooth 5.3 earbuds with charging case", 4999, 120),
    ("electronics", "Noise-Cancelling Headphones", "Over-ear, 30 h battery", 19999, 40),
    ("electronics", "USB-C Charger 65W", "GaN charger, two ports", 3499, 200),
    ("electronics", "Mechanical Keyboard", "Tenkeyless, hot-swappable switches", 8999, 60),
    ("electronics", "Wireless Mouse", "Ergonomic, silent clicks", 2499, 150),
    ("electronics", "27-inch 4K Monitor", "IPS panel, USB-C with 90W power delivery", 32999, 15),
    ("electronics", "Portable SSD 1TB", "USB 3.2, 1050 MB/s", 10999, 80),
    ("electronics", "Smartwatch", "Heart rate, GPS, 7-day battery", 14999, 3),
    ("books", "The Pragmatic Programmer", "20th anniversary edition", 3999, 50),
    ("books", "Designing Data-Intensive Applications", "Reliable, scalable systems", 4599, 35),
    ("books", "Clean Architecture", "A craftsman's guide to software structure", 3299, 25),
    ("books", "Domain-Driven Design Distilled", "A short introduction to DDD", 2999, 40),
    ("books", "Python Crash Course", "A hands-on introduction to programming", 3599, 60),
    ("books", "Refactoring", "Improving the design of existing code, 2nd edition", 4299, 4),
    ("books", "Site Reliability Engineering", "How Google runs production systems", 4999, 20),
    ("home", "Cast Iron Skillet", "12-inch, pre-seasoned", 3999, 45),
    ("home", "French Press", "1 litre, borosilicate glass", 2799, 70),
    ("home", "Chef's Knife", "8-inch, German steel", 5999, 30),
    ("home", "Linen Bed Sheets", "Queen size, stone-washed", 12999, 20),
    ("home", "Desk Lamp", "LED, dimmable, warm to cool white", 3999, 55),
    ("home", "Ceramic Mug Set", "Four 350 ml mugs", 2499, 90),
    ("home", "Air Purifier", "HEPA filter, rooms up to 40 m²", 14999, 2),
    ("sports", "Yoga Mat", "6 mm, non-slip", 2999, 100),
    ("sports", "Adjustable Dumbbells", "2.5 to 24 kg per dumbbell", 29999, 10),
    ("sports", "Running Shoes", "Lightweight road running shoes", 11999, 45),
    ("sports", "Water Bottle", "Insulated stainless steel, 750 ml", 2499, 150),
    ("sports", "Resistance Bands", "Set of five, 5 to 50 kg", 1999, 80),
    ("sports", "Cycling Helmet", "MIPS, ventilated", 7999, 25),
    ("sports", "Jump Rope", "Ball-bearing speed rope", 1299, 0),
    ("sports", "Foam Roller", "45 cm, high density", 2299, 35),
]


def seed_id(name: str) -> str:
    """The fixed id of a demo product."""
    return str(uuid.uuid5(SEED_NAMESPACE, name))


def demo_catalogue() -> list[tuple[str, NewProduct]]:
    """The demo products with their fixed ids."""
    return [
        (
            seed_id(name),
            NewProduct(
                name=name,
                description=description,
                category=category,
                price_cents=price,
                stock_count=stock,
            ),
        )
        for category, name, description, price, stock in _CATALOGUE
    ]
