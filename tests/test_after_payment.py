"""After the payment: cancellation and refunds, waitlist promotion, expiry, reconciliation."""

import asyncio
import time
from datetime import timedelta

import pytest

from railserve.invariants import violations
from railserve.models import Booking, Mail, Notification, Train
from railserve.payment import service
from railserve.payment.models import Payment, PaymentEvent, Refund
from railserve.payment.providers.models import SimulatedCharge
from railserve.payment.providers.simulated import SUCCESS, event_body
from railserve.payment.signature import sign
from railserve.sweep import sweep
from tests.conftest import WEBHOOK_SECRET
from tests.support.passenger import Passenger, make_train
from tests.support.waiting import eventually


def gateway_of(app):
    return app.extensions["railserve.gateway"]


async def kinds(user_id: int) -> list[str]:
    return await Notification.filter(user_id=user_id).order_by("id").values_list("kind", flat=True)


async def test_cancel_unpaid_booking(passenger, train):
    booking_id = await passenger.book(train)
    response = await passenger.post(f"/bookings/{booking_id}/cancel")
    assert response.status_code == 303 and response.headers["Location"] == "/profile"
    assert (await Booking.get(id=booking_id)).status == "cancelled"
    assert (await passenger.post(f"/bookings/{booking_id}/cancel")).status_code == 409


async def test_cancel_paid_booking_refunds_less_charges_and_releases_seats(passenger):
    train = await make_train(seats=3)  # 3A, departing in three days: ₹180 + 5 % GST each
    booking_id = await passenger.book(train, ["A", "B"])
    txn = (await passenger.pay(booking_id))["transaction_id"]
    response = await passenger.post(f"/bookings/{booking_id}/cancel")
    assert response.status_code == 303
    payment = await Payment.get(transaction_id=txn)
    refund = await Refund.get(payment_id=payment.id)
    assert payment.status == "refunded" and payment.refunded_amount == 2 * (125000 - 18000 - 900)
    assert (refund.amount, refund.charge, refund.gst) == (212200, 36000, 1800)
    assert refund.refund_id.startswith("RFD") and refund.passengers == [1, 2]
    assert (await Booking.get(id=booking_id)).status == "cancelled"
    assert (await Train.get(id=train.id)).seats_left == 3
    # The gateway reports the refund through its webhook.
    await eventually(lambda: Refund.get(id=refund.id), lambda r: r.status != "pending")
    assert await kinds(passenger.user_id) == ["confirmation", "refund", "refund_done"]
    subjects = await Mail.filter(user_id=passenger.user_id).values_list("subject", flat=True)
    assert any("Refund of ₹2,122.00" in s for s in subjects)
    refund = await Refund.get(id=refund.id)
    assert refund.status == "succeeded" and refund.gateway_reference
    receipt = await passenger.text(f"/payment/receipt/{txn}")
    assert refund.refund_id in receipt and refund.gateway_reference in receipt
    assert refund.refund_id in await passenger.text("/profile")
    assert await violations() == []


async def test_cancel_waitlisted_booking_refunds_without_touching_seats(new_passenger):
    train = await make_train(seats=1)
    holder, waiting = await new_passenger(name="Holder"), await new_passenger(name="Waiting")
    await holder.pay(await holder.book(train))
    booking_id = await waiting.book(train)
    assert (await waiting.pay(booking_id))["booking_status"] == "waitlisted"
    assert (await waiting.post(f"/bookings/{booking_id}/cancel")).status_code == 303
    assert (await Booking.get(id=booking_id)).status == "cancelled"
    assert (await Train.get(id=train.id)).seats_left == 0
    assert await violations() == []


async def test_cancelling_three_seats_promotes_in_order_and_skips_what_does_not_fit(
    new_passenger,
):
    train = await make_train(seats=3)
    owner = await new_passenger(name="Owner")
    big = await owner.book(train, ["A", "B", "C"])
    await owner.pay(big)
    queue = []
    for name, size in (("W1", 1), ("W2", 3), ("W3", 2), ("W4", 1)):
        person = await new_passenger(name=name)
        booking_id = await person.book(train, [name] * size)
        assert (await person.pay(booking_id))["booking_status"] == "waitlisted"
        queue.append((person, booking_id))
    await owner.post(f"/bookings/{big}/cancel")
    statuses = [(await Booking.get(id=b)).status for _, b in queue]
    # W1 (1) fits, W2 (3) does not after W1 and is skipped in place, W3 (2) fits, W4 waits.
    assert statuses == ["confirmed", "waitlisted", "confirmed", "waitlisted"]
    assert (await Train.get(id=train.id)).seats_left == 0
    assert "promotion" in await kinds(queue[0][0].user_id)
    assert "promotion" not in await kinds(queue[1][0].user_id)
    assert "confirmed" in (await queue[2][0].text("/profile"))
    assert await violations() == []


async def test_expiry_of_attempts_and_holds_with_a_controlled_clock(slow_app, settings):
    person = await Passenger.sign_up(slow_app)
    train = await make_train()
    paying = await person.book(train)
    txn = await person.start(paying)
    idle = await person.book(train)
    now = service.now_utc()

    early = await sweep(settings, gateway_of(slow_app), now + timedelta(seconds=60))
    assert early.timed_out == [] and early.expired_bookings == []

    later = now + timedelta(seconds=settings.booking_hold + 1)
    report = await sweep(settings, gateway_of(slow_app), later)
    assert report.timed_out == [txn]
    payment = await Payment.get(transaction_id=txn)
    assert (payment.status, payment.failure_reason) == ("cancelled", "timed out")
    assert {(await Booking.get(id=b)).status for b in (paying, idle)} == {"expired"}
    assert await Notification.filter(user_id=person.user_id, kind="expiry").count() == 2
    assert await Mail.filter(user_id=person.user_id, subject__contains="expired").count() == 2
    assert await violations() == []


async def test_reconciliation_completes_an_attempt_whose_report_was_lost(slow_app, settings):
    person = await Passenger.sign_up(slow_app)
    booking_id = await person.book(await make_train())
    txn = await person.start(booking_id)
    # The server died before the gateway's report arrived; the gateway has since settled.
    await SimulatedCharge.filter(transaction_id=txn).update(
        settles_at=service.now_utc() - timedelta(seconds=1)
    )
    report = await sweep(settings, gateway_of(slow_app), service.now_utc() + timedelta(seconds=60))
    assert report.reconciled == [txn]
    assert (await person.status(txn))["booking_status"] == "confirmed"
    event = await PaymentEvent.filter(payment__transaction_id=txn, to_status="success").get()
    assert event.actor == "system" and "reconciled" in event.detail
    assert await violations() == []


async def _deliver(person, txn: str, amount: int):
    body = event_body(txn, amount, "INR", SUCCESS)
    response = await person.client.post(
        "/payment/webhook",
        data=body,
        headers={
            "RailServe-Signature": sign(WEBHOOK_SECRET, body, int(time.time())),
            "Content-Type": "application/json",
        },
    )
    return response


@pytest.mark.parametrize("seats_remain", [True, False])
async def test_late_success_after_expiry(slow_app, settings, seats_remain):
    from railserve.sweep import SweepReport, expire_holds

    person = await Passenger.sign_up(slow_app)
    train = await make_train(seats=1)
    booking_id = await person.book(train)
    txn = await person.start(booking_id)
    await expire_holds(
        settings, service.now_utc() + timedelta(seconds=settings.booking_hold + 1), SweepReport()
    )
    assert (await Booking.get(id=booking_id)).status == "expired"
    if not seats_remain:
        await Train.filter(id=train.id).update(seats_left=0, total_seats=0)
    response = await _deliver(person, txn, 125000)
    assert response.status_code == 200
    booking = await Booking.get(id=booking_id)
    payment = await Payment.get(transaction_id=txn)
    if seats_remain:
        assert (booking.status, payment.status) == ("confirmed", "success")
    else:
        assert (booking.status, payment.status) == ("cancelled", "refunded")
        messages = await Notification.filter(user_id=person.user_id).values_list(
            "message", flat=True
        )
        assert "Payment received after the booking expired: refunded in full" in messages
    assert await violations() == []


async def test_sweep_twice_and_concurrently_is_like_once(slow_app, settings):
    person = await Passenger.sign_up(slow_app)
    train = await make_train()
    for _ in range(5):
        await person.book(train)
    later = service.now_utc() + timedelta(seconds=settings.booking_hold + 1)
    gateway = gateway_of(slow_app)
    reports = await asyncio.gather(*(sweep(settings, gateway, later) for _ in range(4)))
    again = await sweep(settings, gateway, later)
    assert sum(len(r.expired_bookings) for r in reports) == 5
    assert again.expired_bookings == []
    assert await Notification.filter(kind="expiry").count() == 5
    assert await violations() == []


async def test_notifications_can_be_marked_read(passenger, train):
    await passenger.pay(await passenger.book(train))
    assert "unread notifications" in await passenger.text("/profile")
    response = await passenger.post("/notifications/read")
    assert response.status_code == 303
    assert await Notification.filter(user_id=passenger.user_id, read=False).count() == 0


async def test_success_after_the_passenger_cancelled_is_returned_by_the_gateway(slow_app):
    person = await Passenger.sign_up(slow_app)
    booking_id = await person.book(await make_train())
    txn = await person.start(booking_id)
    assert (await person.post(f"/payment/cancel/{txn}")).status_code == 303
    response = await _deliver(person, txn, 125000)
    assert response.status_code == 409
    payment = await Payment.get(transaction_id=txn)
    assert payment.status == "cancelled" and payment.refunded_amount == 125000
    assert (await Booking.get(id=booking_id)).status == "pending_payment"
    refund = await Refund.get(payment_id=payment.id)
    assert (refund.amount, refund.charge, refund.status) == (125000, 0, "pending")
    rejection = await PaymentEvent.get(payment__transaction_id=txn, event="webhook_rejected")
    assert f"money returned through refund {refund.refund_id}" in rejection.detail
    # Delivered again, the same success is not returned twice.
    assert (await _deliver(person, txn, 125000)).status_code == 409
    assert await Refund.filter(payment_id=payment.id).count() == 1
    assert await violations() == []


async def test_success_on_a_train_cancelled_meanwhile_is_refunded_in_full(slow_app):
    """The railway cancelled the train while the gateway worked (cancel-train had not
    reached this booking yet): the booking is never confirmed, the money goes back."""
    person = await Passenger.sign_up(slow_app)
    train = await make_train(seats=5)
    booking_id = await person.book(train)
    txn = await person.start(booking_id)
    await Train.filter(id=train.id).update(
        cancelled_at=service.now_utc(), cancellation_reason="Flooding"
    )
    response = await _deliver(person, txn, 125000)
    assert response.status_code == 200
    booking = await Booking.get(id=booking_id)
    payment = await Payment.get(transaction_id=txn)
    assert (booking.status, payment.status) == ("cancelled", "refunded")
    assert (await Train.get(id=train.id)).seats_left == 5
    refund = await Refund.get(payment_id=payment.id)
    assert (refund.amount, refund.charge, refund.gst) == (125000, 0, 0)
    assert not await Notification.filter(booking_id=booking_id, kind="confirmation").exists()
    assert await violations() == []
