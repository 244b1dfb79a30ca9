"""A way forward after a failure: the card and the status JSON say what to do next."""

from __future__ import annotations

import html as markup
import re
from datetime import timedelta

import pytest

from railserve import display
from railserve.models import Booking
from railserve.payment import cancelling
from railserve.payment.advice import ADVICE, FailureKind, advice_for, failure_kind
from railserve.payment.models import Actor, Payment
from railserve.payment.providers.simulated import PROCESSING_ERROR
from tests.support.passenger import CARD_DECLINED, CARD_NO_FUNDS, Passenger, card, make_train

HOLD = re.compile(r"held until <time datetime=\"([^\"]+)\" data-countdown>(\d\d:\d\d IST)</time>")


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ("Card declined", FailureKind.DECLINED),
        ("Declined by bank", FailureKind.DECLINED),
        ("Card account closed", FailureKind.DECLINED),
        ("Insufficient funds", FailureKind.INSUFFICIENT_FUNDS),
        (PROCESSING_ERROR, FailureKind.PROCESSING_ERROR),
        ("The payment gateway is unavailable: nothing was charged", FailureKind.PROCESSING_ERROR),
        ("timed out", FailureKind.TIMED_OUT),
        ("The bank did not respond in time", FailureKind.TIMED_OUT),
        ("The payment gateway did not answer in time", FailureKind.TIMED_OUT),
        ("Cancelled by you", FailureKind.CANCELLED),
        ("Something new", FailureKind.OTHER),
        (None, FailureKind.OTHER),
    ],
)
def test_each_reason_has_a_kind(reason, kind):
    assert failure_kind(reason) is kind


def test_advice_only_for_failed_or_cancelled_attempts():
    assert advice_for("pending", None) is None
    assert advice_for("success", None) is None
    assert advice_for("refunded", "Card declined") is None
    assert advice_for("cancelled", "Booking cancelled") == ADVICE[FailureKind.CANCELLED]
    assert advice_for("failed", "Payment failed") == ADVICE[FailureKind.OTHER]


async def assert_card_says(person: Passenger, txn: str, advice: str) -> None:
    """The JSON carries the advice; the card shows it, the hold, support and references."""
    status = await person.status(txn)
    assert status["advice"] == advice
    page = await person.text(f"/payment/status/{txn}")
    assert markup.escape(advice) in page
    payment = await Payment.get(transaction_id=txn)
    booking = await Booking.get(id=payment.booking_id)
    held = HOLD.search(page)
    assert held, "the card says until when the booking is held"
    until = booking.created_at + timedelta(seconds=900)
    assert held.group(2) == display.format_clock(until)
    assert "support@railserve.example" in page and "+91 80 4718 2000" in page
    assert f"<code>{txn}</code>" in page and booking.pnr in page


@pytest.mark.parametrize(
    ("number", "kind", "words"),
    [
        (CARD_DECLINED, FailureKind.DECLINED, "another card or by UPI"),
        (CARD_NO_FUNDS, FailureKind.INSUFFICIENT_FUNDS, "another payment method"),
        ("4000 0000 0000 0119", FailureKind.PROCESSING_ERROR, "Try again in a minute"),
    ],
)
async def test_failures_by_card_give_their_advice(passenger, train, number, kind, words):
    final = await passenger.pay(await passenger.book(train), card(number))
    assert final["status"] == "failed"
    assert words in ADVICE[kind]
    await assert_card_says(passenger, final["transaction_id"], ADVICE[kind])


async def test_timed_out_and_cancelled_attempts_give_their_advice(slow_app):
    person = await Passenger.sign_up(slow_app)
    timed_out = await person.start(await person.book(await make_train()))
    payment = await Payment.get(transaction_id=timed_out)
    assert await cancelling.cancel_pending(payment.id, "timed out", actor=Actor.SYSTEM)
    assert "Check with your bank" in ADVICE[FailureKind.TIMED_OUT]
    await assert_card_says(person, timed_out, ADVICE[FailureKind.TIMED_OUT])

    cancelled = await person.start(await person.book(await make_train()))
    assert (await person.status(cancelled))["advice"] is None  # pending: no advice yet
    response = await person.post(f"/payment/cancel/{cancelled}")
    assert response.status_code == 303
    await assert_card_says(person, cancelled, ADVICE[FailureKind.CANCELLED])


async def test_success_has_no_advice(passenger, train):
    final = await passenger.pay(await passenger.book(train))
    assert final["status"] == "success" and final["advice"] is None


async def test_pages_show_en_in_grouping_and_ist(passenger):
    train = await make_train(fare=12345000)
    booking_id = await passenger.book(train)
    page = await passenger.text(f"/payment/pay/{booking_id}")
    assert "₹1,23,450.00" in page
    assert display.format_when(train.departs_at) in page and " IST" in page
    assert "₹1,23,450.00" in await passenger.text("/")
    profile = await passenger.text("/profile")
    assert "₹1,23,450.00" in profile and "IST" in profile
