"""Money is an integer of minor units: this module reads it from input and writes the plain
digits string that forms and JSON carry. Display formatting is Babel's (railserve/display.py).

The number of digits after the point is the currency's ISO 4217 minor unit, from Babel:
two for INR, USD and EUR, none for JPY, three for BHD and KWD.
"""

from __future__ import annotations

import re
from functools import cache

from babel.numbers import get_currency_precision, list_currencies

_AMOUNT = re.compile(r"([0-9]{1,12})(?:\.([0-9]+))?")  # ASCII digits only
MAX_MINOR = 10**13  # far above any fare, far below a 64-bit overflow


@cache
def digits(currency: str) -> int:
    """The currency's minor-unit digits (ISO 4217)."""
    return get_currency_precision(currency)


@cache
def known_currency(code: str) -> bool:
    return isinstance(code, str) and code.isupper() and code in list_currencies()


def format_amount(minor: int, currency: str = "INR") -> str:
    """The plain digits string: "1250.00" INR, "1250" JPY, "12.500" BHD; no grouping."""
    places = digits(currency)
    sign = "-" if minor < 0 else ""
    units, fraction = divmod(abs(minor), 10**places)
    return f"{sign}{units}.{fraction:0{places}d}" if places else f"{sign}{units}"


def parse_amount(text: str, currency: str = "INR") -> int | None:
    """Minor units from "1250", "1250.5" or "1250.00" (INR); None when it is not such a
    number, or has more decimals than the currency has minor digits."""
    match = _AMOUNT.fullmatch(text.strip()) if isinstance(text, str) else None
    if not match:
        return None
    units, fraction = match.groups()
    places = digits(currency)
    if fraction is not None and not 0 < len(fraction) <= places:
        return None
    minor = int(units) * 10**places + int((fraction or "").ljust(places, "0") or 0)
    return minor if minor < MAX_MINOR else None
