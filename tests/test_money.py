"""Money: minor units in, the currency's ISO 4217 digits out; Babel for what people read."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from babel.numbers import format_currency as babel_currency

from railserve import display
from railserve.money import digits, format_amount, known_currency, parse_amount


@pytest.fixture(autouse=True)
def indian_english():
    display.configure("en_IN", "Asia/Kolkata")
    yield
    display.configure("en_IN", "Asia/Kolkata")


@pytest.mark.parametrize(
    ("currency", "places", "minor", "text"),
    [
        ("INR", 2, 125000, "1250.00"),
        ("USD", 2, 1250, "12.50"),
        ("EUR", 2, 5, "0.05"),
        ("JPY", 0, 1250, "1250"),
        ("BHD", 3, 12500, "12.500"),
        ("KWD", 3, 1, "0.001"),
    ],
)
def test_digits_follow_iso_4217(currency, places, minor, text):
    assert digits(currency) == places
    assert format_amount(minor, currency) == text
    assert parse_amount(text, currency) == minor


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("1250", "INR", 125000),
        ("1250.5", "INR", 125050),
        ("12.5", "BHD", 12500),
        ("0", "JPY", 0),
        (" 7 ", "JPY", 7),
    ],
)
def test_parse_accepts_fewer_digits(text, currency, minor):
    assert parse_amount(text, currency) == minor


@pytest.mark.parametrize(
    ("text", "currency"),
    [
        ("1250.0", "JPY"),
        ("12.5000", "BHD"),
        ("1250.555", "INR"),
        ("1,250.00", "INR"),
        ("-5", "INR"),
        ("1e3", "INR"),
        ("", "INR"),
        ("1250.", "INR"),
        ("١٢٣", "INR"),
        ("9" * 13, "INR"),
    ],
)
def test_parse_refuses_what_the_currency_cannot_hold(text, currency):
    assert parse_amount(text, currency) is None


def test_known_currencies_come_from_babel():
    assert known_currency("USD") and known_currency("JPY") and known_currency("BHD")
    assert not known_currency("usd") and not known_currency("XYZ") and not known_currency("")


def test_display_uses_the_locale_grouping():
    assert display.format_money(245000) == "₹2,450.00"
    assert display.format_money(12345000) == "₹1,23,450.00"
    assert display.format_money(1250, "JPY") == "JP¥1,250"
    assert display.format_money(12500, "BHD") == "BHD12.500"
    display.configure("en_US", "UTC")
    assert display.format_money(12345000) == "₹123,450.00"


def test_remembered_amounts_follow_the_locale_and_the_currency():
    """format_money remembers what it formatted; a locale or currency change still shows."""
    for _ in range(2):  # the second round answers from memory
        assert display.format_money(12345000) == "₹1,23,450.00"
        assert display.format_money(12345000, "USD") == babel_currency(
            Decimal("123450.00"), "USD", locale="en_IN"
        )
        assert display.format_money(12345000, "JPY") == "JP¥1,23,45,000"
        assert display.format_money(-500) == "-₹5.00"
    display.configure("en_US", "UTC")
    assert display.format_money(12345000) == "₹123,450.00"
    assert display.format_money(12345000, "USD") == "$123,450.00"
    display.configure("en_IN", "Asia/Kolkata")
    assert display.format_money(12345000) == "₹1,23,450.00"


def test_times_are_shown_in_the_configured_zone():
    moment = datetime(2026, 11, 30, 9, 5, tzinfo=UTC)
    assert display.format_when(moment) == "30 Nov 2026, 14:35 IST"
    assert display.format_clock(moment) == "14:35 IST"
    assert display.format_when(moment.replace(tzinfo=None)) == "30 Nov 2026, 14:35 IST"
    display.configure("en_GB", "Europe/London")
    assert display.format_clock(moment) == "09:05 GMT"
