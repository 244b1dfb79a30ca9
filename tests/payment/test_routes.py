"""The payment blueprint through its URLs: pay page, process, status, cancel, receipt."""

import re

import pytest

from railserve.models import Booking
from railserve.payment.models import Payment, PaymentEvent
from tests.support.passenger import CARD_DECLINED, HX, JSON, Passenger, card, make_train

# A card that can still change listens to its event stream (and polls only where the
# stream fails, which app.js decides); a final card does neither.
POLLING = 'sse-connect="/payment/events/'


async def test_pay_page_shows_booking_methods_and_triggers(passenger, train):
    booking_id = await passenger.book(train, ["Asha Rao", "Vikram Rao"])
    booking = await Booking.get(id=booking_id)
    html = await passenger.text(f"/payment/pay/{booking_id}")
    for text in (booking.pnr, train.number, "Asha Rao, Vikram Rao", 'value="2500.00"'):
        assert text in html
    for method in ("credit_card", "debit_card", "net_banking", "upi", "wallet"):
        assert f'value="{method}"' in html
    assert "4000 0000 0000 0002" in html  # test mode lists the triggers
    keys = {(await passenger.pay_form(booking_id))["idempotency_key"] for _ in range(3)}
    assert len(keys) == 3, "every rendering carries a fresh key"


async def test_plain_post_redirects_to_status_page_then_json(passenger, train):
    booking_id = await passenger.book(train)
    form = {**await passenger.pay_form(booking_id), **card()}
    response = await passenger.post(f"/payment/process/{booking_id}", form)
    assert response.status_code == 303
    txn = response.headers["Location"].rsplit("/", 1)[-1]
    assert re.fullmatch(r"TXN[A-Z0-9]{16}", txn)
    final = await passenger.wait_final(txn)
    assert final == {
        "transaction_id": txn,
        "status": "success",
        "booking_id": booking_id,
        "booking_status": "confirmed",
        "amount": "1250.00",
        "currency": "INR",
        "method": "credit_card",
        "failure_reason": None,
        "refunded_amount": "0.00",
        "gateway": "simulated",
        "advice": None,
        "part": None,
        "plan": None,
    }
    page = await passenger.text(f"/payment/status/{txn}")
    assert page.lstrip().lower().startswith("<!doctype html>")
    assert POLLING in page  # a success card still listens: a refund may change it
    assert "data-poll-url" not in page
    assert f"/payment/receipt/{txn}" in page


async def test_pending_partial_polls_and_final_partial_does_not(slow_app):
    person = await Passenger.sign_up(slow_app)
    train = await make_train()
    booking_id = await person.book(train)
    form = {**await person.pay_form(booking_id), **card()}
    response = await person.post(f"/payment/process/{booking_id}", form, htmx=True)
    assert response.status_code == 200
    partial = await response.get_data(as_text=True)
    assert "<html" not in partial
    txn = re.search(r'id="payment-(TXN[A-Z0-9]{16})"', partial).group(1)
    assert POLLING in partial and 'hx-swap="outerHTML"' in partial
    assert f'data-poll-url="/payment/status/{txn}"' in partial  # the fallback's target
    polled = await person.get(f"/payment/status/{txn}", HX)
    assert POLLING in await polled.get_data(as_text=True)

    from railserve.payment import service

    await service.settle(txn, True)
    final = await person.get(f"/payment/status/{txn}", HX)
    assert final.status_code == 200
    body = await final.get_data(as_text=True)
    assert POLLING in body and "Payment successful" in body  # listens, never polls
    assert "hx-trigger" not in body and "data-poll-url" not in body


async def test_decline_shows_reason_and_inline_retry(passenger, train):
    booking_id = await passenger.book(train)
    failed = await passenger.pay(booking_id, card(CARD_DECLINED))
    html = await passenger.text(f"/payment/status/{failed['transaction_id']}", None)
    assert "Card declined" in html
    assert f'hx-post="/payment/process/{booking_id}"' in html
    assert 'name="idempotency_key"' in html
    retry = await passenger.pay(booking_id)
    assert retry["status"] == "success"
    assert await Payment.filter(booking_id=booking_id).count() == 2


async def test_same_key_posted_twice_is_one_attempt(passenger, train):
    booking_id = await passenger.book(train)
    form = {**await passenger.pay_form(booking_id), **card()}
    first = await passenger.post(f"/payment/process/{booking_id}", form)
    second = await passenger.post(f"/payment/process/{booking_id}", form)
    assert first.headers["Location"] == second.headers["Location"]
    assert await Payment.filter(booking_id=booking_id).count() == 1


async def test_new_key_while_pending_is_409_naming_the_attempt(slow_app):
    person = await Passenger.sign_up(slow_app)
    booking_id = await person.book(await make_train())
    txn = await person.start(booking_id)
    form = {"idempotency_key": "a-client-made-key-0001", "amount": "1250.00", **card()}
    response = await person.post(f"/payment/process/{booking_id}", form)
    assert response.status_code == 409
    assert txn in await response.get_data(as_text=True)
    assert await Payment.filter(booking_id=booking_id).count() == 1


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"amount": "1.00"}, "amount"),
        ({"amount": "1250.001"}, "amount"),
        ({"method": "bitcoin"}, "method"),
        ({"card_number": "4242 4242 4242 4241"}, "card_number"),
        ({"card_number": "abcd"}, "card_number"),
        ({"card_expiry": "01/20"}, "card_expiry"),
        ({"card_expiry": "13/40"}, "card_expiry"),
        ({"card_cvv": "12"}, "card_cvv"),
        ({"card_cvv": "12345"}, "card_cvv"),
        ({"card_name": ""}, "card_name"),
        ({"method": "upi", "upi_id": "no-at-sign"}, "upi_id"),
        ({"method": "net_banking", "bank": "BANKX"}, "bank"),
        ({"method": "wallet", "wallet": "applepay"}, "wallet"),
        ({"idempotency_key": "short"}, "idempotency_key"),
    ],
)
async def test_invalid_payment_fields_are_422_and_write_nothing(passenger, train, fields, field):
    booking_id = await passenger.book(train)
    form = {**await passenger.pay_form(booking_id), **card(), **fields}
    response = await passenger.post(f"/payment/process/{booking_id}", form)
    assert response.status_code == 422
    html = await response.get_data(as_text=True)
    assert "field-error" in html or "notice-error" in html
    assert "4242 4242 4242 4241" not in html
    assert await Payment.all().count() == 0
    assert await PaymentEvent.all().count() == 0


@pytest.mark.parametrize(
    "instrument",
    [
        {"method": "upi", "upi_id": "success@upi"},
        {"method": "net_banking", "bank": "HDFC"},
        {"method": "wallet", "wallet": "paytm"},
        card(method="debit_card"),
    ],
)
async def test_every_method_can_pay(app_with, settings, instrument):
    async with app_with(settings, gateway_success_rate=1.0) as app:
        person = await Passenger.sign_up(app)
        booking_id = await person.book(await make_train())
        final = await person.pay(booking_id, instrument)
        assert final["status"] == "success"
        assert final["method"] == instrument["method"]


async def test_another_users_booking_and_payment_are_404(passenger, new_passenger, train):
    booking_id = await passenger.book(train)
    form = {**await passenger.pay_form(booking_id), **card()}
    txn = (await passenger.pay(booking_id))["transaction_id"]
    other = await new_passenger(name="Other")
    assert (await other.get(f"/payment/pay/{booking_id}")).status_code == 404
    assert (await other.get(f"/payment/status/{txn}")).status_code == 404
    assert (await other.get(f"/payment/status/{txn}", JSON)).status_code == 404
    assert (await other.get(f"/payment/receipt/{txn}")).status_code == 404
    assert (await other.post(f"/payment/process/{booking_id}", form)).status_code == 404
    # Another's booking is not found before the form is judged: no hint that it exists.
    stale = {**form, "idempotency_key": "short"}
    assert (await other.post(f"/payment/process/{booking_id}", stale)).status_code == 404
    assert (await other.post(f"/payment/cancel/{txn}")).status_code == 404


async def test_paid_booking_redirects_to_profile_and_refuses_new_attempts(passenger, train):
    booking_id = await passenger.book(train)
    form = await passenger.pay_form(booking_id)
    await passenger.pay(booking_id)
    response = await passenger.get(f"/payment/pay/{booking_id}")
    assert response.status_code == 303
    assert response.headers["Location"] == "/profile"
    fresh = {**form, "idempotency_key": "a-brand-new-key-123456", **card()}
    again = await passenger.post(f"/payment/process/{booking_id}", fresh)
    assert again.status_code == 409
    assert "already paid" in await again.get_data(as_text=True)


async def test_cancel_pending_attempt_then_final_cancel_is_409(slow_app):
    person = await Passenger.sign_up(slow_app)
    booking_id = await person.book(await make_train())
    txn = await person.start(booking_id)
    response = await person.post(f"/payment/cancel/{txn}")
    assert response.status_code == 303
    status = await person.status(txn)
    assert status["status"] == "cancelled"
    assert status["booking_status"] == "pending_payment"
    again = await person.post(f"/payment/cancel/{txn}")
    assert again.status_code == 409
    retry = await person.start(booking_id)
    assert retry != txn


async def test_receipt_shows_the_payment_and_only_for_success(passenger, train):
    booking_id = await passenger.book(train, ["Asha Rao", "Vikram Rao"])
    failed = await passenger.pay(booking_id, card(CARD_DECLINED))
    assert (await passenger.get(f"/payment/receipt/{failed['transaction_id']}")).status_code == 404
    ok = await passenger.pay(booking_id)
    booking = await Booking.get(id=booking_id)
    html = await passenger.text(f"/payment/receipt/{ok['transaction_id']}")
    for text in (
        ok["transaction_id"],
        booking.pnr,
        train.number,
        "Asha Rao",
        "Vikram Rao",
        "₹2,500.00",
        "Credit card",
        "4242",
    ):
        assert text in html
    assert "4242 4242 4242 4242" not in html and "4242424242424242" not in html


async def test_profile_lists_every_attempt_with_masked_instrument(passenger, train):
    booking_id = await passenger.book(train)
    first = await passenger.pay(booking_id, card(CARD_DECLINED))
    second = await passenger.pay(booking_id)
    html = await passenger.text("/profile")
    assert first["transaction_id"] in html and second["transaction_id"] in html
    assert "Visa •••• 0002" in html and "Card declined" in html


async def test_unknown_transaction_is_404(passenger):
    assert (await passenger.get("/payment/status/TXNAAAAAAAAAAAAAAAA")).status_code == 404
    assert (await passenger.get("/payment/pay/999999")).status_code == 404
    assert (await passenger.get("/payment/pay/99999999999999999999")).status_code == 404


async def test_retry_form_on_the_status_page_works_as_a_plain_post(passenger, train):
    booking_id = await passenger.book(train)
    failed = await passenger.pay(booking_id, card(CARD_DECLINED))
    html = await passenger.text(f"/payment/status/{failed['transaction_id']}")
    form = re.search(r'<form method="post" action="(/payment/process/\d+)".*?</form>', html, re.S)
    assert form, "the failure page carries a plain retry form"
    key = re.search(r'name="idempotency_key" value="([^"]+)"', form.group(0)).group(1)
    amount = re.search(r'name="amount" value="([^"]+)"', form.group(0)).group(1)
    response = await passenger.post(
        form.group(1), {"idempotency_key": key, "amount": amount, **card()}
    )
    assert response.status_code == 303
    retry = await passenger.wait_final(response.headers["Location"].rsplit("/", 1)[-1])
    assert retry["status"] == "success" and retry["booking_status"] == "confirmed"
