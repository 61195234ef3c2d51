"""Pricing a cart: integer cents, tax per tax class rounded half up once per class."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from store_server.domain.layout import Product
from store_server.domain.session import CartLine


@dataclass(frozen=True)
class BillLine:
    sku: str
    name: str
    quantity: int
    unit_price_cents: int
    amount_cents: int
    tax_class: str


@dataclass(frozen=True)
class Bill:
    currency: str
    lines: tuple[BillLine, ...]
    subtotal_cents: int
    tax_cents: int
    total_cents: int
    tax_by_class: tuple[tuple[str, int], ...]


class UnknownProduct(KeyError):
    pass


def price_cart(
    cart: list[CartLine], products: dict[str, Product], tax_rates: dict[str, float], currency: str
) -> Bill:
    lines: list[BillLine] = []
    base_by_class: dict[str, int] = {}
    for line in sorted(cart, key=lambda item: item.sku):
        product = products.get(line.sku)
        if product is None:
            raise UnknownProduct(f"sku {line.sku!r} is not in the catalog")
        amount = product.price_cents * line.quantity
        lines.append(
            BillLine(line.sku, product.name, line.quantity, product.price_cents, amount, product.tax_class)
        )
        base_by_class[product.tax_class] = base_by_class.get(product.tax_class, 0) + amount
    taxes = tuple(
        (cls, int((Decimal(base) * Decimal(str(tax_rates[cls]))).quantize(Decimal(1), ROUND_HALF_UP)))
        for cls, base in sorted(base_by_class.items())
    )
    subtotal = sum(line.amount_cents for line in lines)
    tax = sum(t for _, t in taxes)
    return Bill(currency, tuple(lines), subtotal, tax, subtotal + tax, taxes)
