"""Money's edges that the table in test_money.py leaves open (found by mutation testing)."""

import pytest

from railserve.money import MAX_MINOR, format_amount, parse_amount


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (0, "INR", "0.00"),
        (-5, "INR", "-0.05"),
        (-125000, "INR", "-1250.00"),
        (-1250, "JPY", "-1250"),
        (-1, "BHD", "-0.001"),
    ],
)
def test_zero_has_no_sign_and_negative_amounts_keep_theirs(minor, currency, text):
    assert format_amount(minor, currency) == text


def test_amounts_stop_below_the_largest_minor_count():
    assert parse_amount("99999999999.99") == MAX_MINOR - 1
    assert parse_amount("100000000000.00") is None
    assert parse_amount("100000000000") is None


@pytest.mark.parametrize("value", [None, 1250, 12.5, b"1250"])
def test_only_text_is_read_as_an_amount(value):
    assert parse_amount(value) is None
