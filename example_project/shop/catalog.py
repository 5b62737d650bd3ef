"""The shop's products: a fixed list in code, so the example needs no database or migrations."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class Product:
    slug: str
    name: str
    price: Decimal
    blurb: str


PRODUCTS: dict[str, Product] = {
    product.slug: product
    for product in (
        Product("teapot", "Cast-iron teapot", Decimal("29.90"), "Keeps tea hot for an hour."),
        Product("mug", "Stoneware mug", Decimal("12.50"), "Holds a generous 350 ml."),
        Product("kettle", "Gooseneck kettle", Decimal("54.00"), "Pours slowly and precisely."),
    )
}
