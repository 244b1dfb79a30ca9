"""Each limit is stated once: the checks, the columns and the messages agree with it."""

from __future__ import annotations

import pytest

from railserve import bounds
from railserve.models import User
from railserve.payment.models import OperatorAction, Refund


@pytest.mark.parametrize("identifier", [bounds.TRANSACTION_ID, bounds.REFUND_ID, bounds.PNR])
def test_a_new_identifier_matches_its_format(identifier: bounds.Identifier) -> None:
    made = identifier.new()
    assert identifier.matches(made)
    assert len(made) == len(identifier.prefix) + identifier.length
    assert not identifier.matches(made + "A") and not identifier.matches(made.lower())


@pytest.mark.parametrize("identifier", [bounds.TRANSACTION_ID, bounds.PNR])
def test_bytes_that_would_favour_some_characters_are_dropped(
    identifier: bounds.Identifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A byte above the largest multiple of the alphabet's size would make the first
    characters likelier (256 is no multiple of 36 or 34): it is never used. The bytes kept
    map to the alphabet in turn, each character from the same number of byte values."""
    draws = iter([bytes([255]) * 64, bytes(range(64))])
    monkeypatch.setattr(bounds.secrets, "token_bytes", lambda n: next(draws)[:n])
    made = identifier.new()
    size = len(identifier.alphabet)
    expected = "".join(identifier.alphabet[i % size] for i in range(identifier.length))
    assert made == identifier.prefix + expected
    assert 256 - 256 % size <= 255  # the first draw was all to be dropped


def test_lengths_include_both_ends() -> None:
    assert bounds.REASON.fits("abc") and bounds.REASON.fits("a" * 300)
    assert not bounds.REASON.fits("ab") and not bounds.REASON.fits("a" * 301)
    assert bounds.REASON.words == "3 to 300"


def test_columns_hold_what_the_forms_accept() -> None:
    assert bounds.REASON.max <= bounds.TEXT_COLUMN
    assert len(bounds.clip("x" * 1000)) == bounds.TEXT_COLUMN
    assert User._meta.fields_map["name"].max_length == bounds.NAME.max
    assert OperatorAction._meta.fields_map["reason"].max_length == bounds.TEXT_COLUMN
    assert Refund._meta.fields_map["offline_reference"].max_length == bounds.REFERENCE.max
