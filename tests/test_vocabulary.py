"""The words people read: one label per stored code, sentence case, no raw underscores."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from railserve import display
from railserve.models import BookingStatus, TravelClass
from railserve.payment.models import Actor, PaymentMethod, PaymentStatus, RefundStatus
from railserve.vocabulary import action, label, phrase, refund_kind, travel_class


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (PaymentStatus.PARTIALLY_REFUNDED, "Partly refunded"),
        ("partially_refunded", "Partly refunded"),
        (PaymentStatus.SUCCESS, "Successful"),
        (BookingStatus.PENDING_PAYMENT, "Awaiting payment"),
        (PaymentMethod.CREDIT_CARD, "Credit card"),
        (PaymentMethod.UPI, "UPI"),
        (RefundStatus.SUCCEEDED, "Succeeded"),
        (Actor.USER, "Passenger"),
        ("refund_part", "Partly refunded"),
        ("something_new", "Something new"),
        (None, "—"),
    ],
)
def test_label(value, words):
    assert label(value) == words


@pytest.mark.parametrize("enum", [PaymentStatus, BookingStatus, PaymentMethod, RefundStatus, Actor])
def test_every_stored_code_has_sentence_case_words(enum):
    for member in enum:
        words = label(member)
        assert "_" not in words and words[:1].isupper(), (member, words)


def test_phrase_keeps_names_and_lowers_the_rest():
    assert phrase(PaymentStatus.PARTIALLY_REFUNDED) == "partly refunded"
    assert phrase(BookingStatus.CONFIRMED) == "confirmed"
    assert phrase(PaymentMethod.UPI) == "UPI"


def test_every_class_of_travel_has_its_name_and_code():
    assert travel_class(TravelClass.THIRD_AC) == "AC 3 Tier (3A)"
    assert travel_class("SL") == "Sleeper (SL)"
    for member in TravelClass:
        assert travel_class(member).endswith(f"({member.value})")


def test_kinds_of_refund():
    assert refund_kind(SimpleNamespace(actor=Actor.OPERATOR)) == "Refund by our team"
    assert refund_kind(SimpleNamespace(actor=Actor.USER)) == "Cancellation refund"
    assert refund_kind(SimpleNamespace(actor=Actor.SYSTEM)) == "Automatic refund"


def test_money_and_time_as_people_read_them():
    display.configure("en_IN", "Asia/Kolkata")
    assert display.format_money(294150) == "₹2,941.50"
    assert display.format_money(12345000) == "₹1,23,450.00"
    noon = datetime(2026, 11, 30, 9, 5, tzinfo=UTC)
    assert display.format_when(noon) == "30 Nov 2026, 14:35 IST"
    assert display.format_local(noon) == "14:35"
    assert display.format_local(noon, "d MMM, HH:mm") == "30 Nov, 14:35"
    assert display.zone_name(noon) == "IST"
    assert display.format_local(None) == ""


def test_operator_actions_as_the_audit_names_them():
    assert action("refund") == "Refund"
    assert action("refund refused") == "Refund (refused)"
    assert action("replay refused") == "Replay a webhook (refused)"
    assert action("settle_offline") == "Settle offline"
