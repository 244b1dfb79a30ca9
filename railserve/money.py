"""Money is an integer of minor units; this is the one place that reads and writes it."""

from __future__ import annotations

import re

_AMOUNT = re.compile(r"(\d{1,12})(?:\.(\d{1,2}))?")
MAX_MINOR = 10**13  # far above any fare, far below a 64-bit overflow


def format_amount(minor: int) -> str:
    """1250.00 for 125000: two decimals, no grouping (PRODUCT.md)."""
    sign = "-" if minor < 0 else ""
    minor = abs(minor)
    return f"{sign}{minor // 100}.{minor % 100:02d}"


def format_money(minor: int, currency: str = "INR") -> str:
    symbol = {"INR": "₹"}.get(currency)
    return f"{symbol}{format_amount(minor)}" if symbol else f"{format_amount(minor)} {currency}"


def parse_amount(text: str) -> int | None:
    """Minor units from "1250", "1250.5" or "1250.00"; None when it is not such a number."""
    match = _AMOUNT.fullmatch(text.strip()) if isinstance(text, str) else None
    if not match:
        return None
    units, fraction = match.groups()
    minor = int(units) * 100 + int((fraction or "").ljust(2, "0"))
    return minor if minor < MAX_MINOR else None
