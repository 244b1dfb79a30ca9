"""A card that tells the truth about money taken and returned: an attempt the passenger
cancelled, which the gateway captured anyway and the app refunded in full, never says
"Nothing was charged"; the dashboard stops asking for attention once the money is back;
the failure card speaks of the booking held, never of seats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from railserve.invariants import violations
from railserve.ops import dashboard
from railserve.payment.advice import advice_for
from railserve.payment.models import Payment, Refund
from railserve.payment.refunds import handover
from tests.security.helpers import event, send_webhook
from tests.support.passenger import CARD_DECLINED, HX, Passenger, card, make_train


async def attention_for(transaction_id: str) -> list[str]:
    figures = await dashboard.figures(datetime.now(UTC), timedelta(minutes=5))
    return [item.what for item in figures.attention if item.transaction_id == transaction_id]


async def test_a_cancelled_attempt_captured_anyway_and_returned(slow_app):
    passenger = await Passenger.sign_up(slow_app)
    booking_id = await passenger.book(await make_train())
    txn = await passenger.start(booking_id)
    assert (await passenger.post(f"/payment/cancel/{txn}")).status_code in (200, 303)
    assert (await passenger.status(txn))["status"] == "cancelled"

    # The gateway captures it anyway: refused (409), and the money goes back in full.
    assert (await send_webhook(slow_app, event(txn))).status_code == 409
    (refund,) = await Refund.filter(payment__transaction_id=txn)
    assert refund.amount == 125000
    assert await attention_for(txn) == ["Webhook refused with 409"]

    card_html = await passenger.text(f"/payment/status/{txn}", HX)
    status = await passenger.status(txn)
    profile = await passenger.text("/profile")
    for text in (card_html, status["advice"], profile):
        assert "Nothing was charged" not in text and "nothing was charged" not in text
    assert "returned to you" in card_html and refund.refund_id in card_html
    assert "returned to you" in status["advice"] and status["refunded_amount"] == "1250.00"
    assert "captured after" not in profile and "refunded in full" in profile

    settings = slow_app.config["RAILSERVE"]
    assert await handover.settle_refund(settings, refund.refund_id, True)
    assert await attention_for(txn) == []  # the money is back: nothing needs attention
    payment = await Payment.get(transaction_id=txn)
    assert (payment.status, payment.refunded_amount) == ("cancelled", 125000)
    assert await violations() == []


async def test_the_failure_card_holds_the_booking_not_seats(app, passenger, train):
    booking_id = await passenger.book(train)
    final = await passenger.pay(booking_id, card(CARD_DECLINED))
    card_html = await passenger.text(f"/payment/status/{final['transaction_id']}", HX)
    assert "Booking held until" in card_html
    assert "seats are held" not in card_html.lower() and "seats held" not in card_html.lower()
    assert "seats" not in advice_for("cancelled", "Cancelled by you")


def test_no_advice_promises_held_seats():
    for status in ("failed", "cancelled"):
        for reason in (None, "Card declined", "Cancelled by you", "timed out"):
            assert "seats" not in advice_for(status, reason)
