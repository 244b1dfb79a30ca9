"""The brand a card is shown under (pay page, receipt, history) follows its prefix."""

import pytest

from railserve.payment.forms import card_brand


@pytest.mark.parametrize(
    ("digits", "brand"),
    [
        ("4111111111111111", "Visa"),
        ("5555555555554444", "Mastercard"),
        ("2221000000000009", "Mastercard"),
        ("378282246310005", "Amex"),
        ("6073849700000005", "RuPay"),
        ("8200000000000000", "RuPay"),
        ("9000000000000000", "Card"),
    ],
)
def test_card_brand_by_prefix(digits, brand):
    assert card_brand(digits) == brand
