"""Validation of the payment form: every check runs before any attempt exists.

The result keeps the raw instrument only in memory, for the gateway; what is stored is
the masked instrument.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from railserve.bounds import NAME
from railserve.errors import Invalid
from railserve.money import format_amount, parse_amount
from railserve.payment.models import PaymentMethod

BANKS = ("SBI", "HDFC", "ICICI", "AXIS", "KOTAK")
WALLETS = ("paytm", "phonepe", "amazonpay", "mobikwik")
WALLET_LABELS = {
    "paytm": "Paytm",
    "phonepe": "PhonePe",
    "amazonpay": "Amazon Pay",
    "mobikwik": "MobiKwik",
}
IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_-]{16,64}")
UPI_ID = re.compile(r"[A-Za-z0-9._-]{2,64}@[A-Za-z][A-Za-z0-9.-]{1,63}")
CARD_SEPARATORS = re.compile(r"[ -]")
EXPIRY = re.compile(r"(\d{2})\s*/\s*(\d{2})")


@dataclass(frozen=True)
class PaymentRequest:
    method: PaymentMethod
    amount: int
    idempotency_key: str
    masked_instrument: str
    instrument: Mapping[str, str] = field(repr=False)


def idempotency_key(form: Mapping[str, str]) -> str:
    key = form.get("idempotency_key", "")
    if not IDEMPOTENCY_KEY.fullmatch(key):
        raise Invalid(
            "This payment form has expired. Reload the page and try again.",
            errors={"idempotency_key": "Reload the page to get a fresh payment form."},
        )
    return key


def luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def card_brand(digits: str) -> str:
    if digits.startswith("4"):
        return "Visa"
    if digits[:2] in ("51", "52", "53", "54", "55") or digits[:2] == "22":
        return "Mastercard"
    if digits[:2] in ("34", "37"):
        return "Amex"
    if digits[:2] in ("60", "65", "81", "82"):
        return "RuPay"
    return "Card"


def _printable(text: str, limit: int) -> bool:
    return 0 < len(text) <= limit and text.isprintable()


def _card(form: Mapping[str, str], now: datetime, errors: dict[str, str]) -> str:
    digits = CARD_SEPARATORS.sub("", form.get("card_number", ""))
    if not (digits.isascii() and digits.isdigit() and 12 <= len(digits) <= 19 and luhn_ok(digits)):
        errors["card_number"] = "Enter a valid card number."
    expiry = EXPIRY.fullmatch(form.get("card_expiry", "").strip())
    if not expiry:
        errors["card_expiry"] = "Enter the expiry date as MM/YY."
    else:
        month, year = int(expiry.group(1)), 2000 + int(expiry.group(2))
        if not 1 <= month <= 12:
            errors["card_expiry"] = "Enter the expiry date as MM/YY."
        elif (year, month) < (now.year, now.month):
            errors["card_expiry"] = "This card has expired."
    cvv = form.get("card_cvv", "")
    if not (cvv.isascii() and cvv.isdigit() and 3 <= len(cvv) <= 4):
        errors["card_cvv"] = "Enter the 3 or 4 digit security code."
    if not _printable(form.get("card_name", "").strip(), NAME.max):
        errors["card_name"] = f"Enter the name on the card (up to {NAME.max} characters)."
    return f"{card_brand(digits)} •••• {digits[-4:]}" if "card_number" not in errors else ""


def parse_payment(
    form: Mapping[str, str], amount_due: int, now: datetime, currency: str = "INR"
) -> PaymentRequest:
    """Check a submitted payment form against the booking; raise Invalid with every problem."""
    errors: dict[str, str] = {}
    key = idempotency_key(form)
    try:
        method = PaymentMethod(form.get("method", ""))
    except ValueError:
        raise Invalid(
            "Choose a payment method.", errors={"method": "Choose a payment method."}
        ) from None
    amount = parse_amount(form.get("amount", ""), currency)
    if amount != amount_due:
        errors["amount"] = (
            f"The amount must be the booking's amount, {format_amount(amount_due, currency)}."
        )
    masked = ""
    instrument: dict[str, str] = {}
    if method.is_card:
        masked = _card(form, now, errors)
        instrument = {"card_number": CARD_SEPARATORS.sub("", form.get("card_number", ""))}
    elif method is PaymentMethod.NET_BANKING:
        bank = form.get("bank", "")
        if bank not in BANKS:
            errors["bank"] = "Choose your bank from the list."
        masked = bank
    elif method is PaymentMethod.UPI:
        upi_id = form.get("upi_id", "").strip()
        if not UPI_ID.fullmatch(upi_id):
            errors["upi_id"] = "Enter a UPI id such as name@bank."
        masked = upi_id.lower()
        instrument = {"upi_id": upi_id.lower()}
    else:
        wallet = form.get("wallet", "")
        if wallet not in WALLETS:
            errors["wallet"] = "Choose a wallet from the list."
        masked = WALLET_LABELS.get(wallet, "")
    if errors:
        raise Invalid("Please correct the highlighted fields.", errors=errors)
    return PaymentRequest(method, amount_due, key, masked, instrument)
