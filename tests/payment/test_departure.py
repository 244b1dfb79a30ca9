"""Booking closes when the train departs (or is cancelled): no listing, no booking, no
payment; the sweep at departure expires unpaid bookings and refunds waitlisted ones less
the waitlist clerkage."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from railserve.invariants import violations
from railserve.models import Booking, Mail, Notification, Train
from railserve.payment.models import Payment, Refund
from railserve.payment.service import now_utc
from railserve.sweep import sweep
from tests.support.passenger import card, make_train

FARE = 125000  # ₹1,250.00, class 3A: clerkage ₹60 plus 5 % GST is ₹63


async def leaves(train: Train) -> None:
    await Train.filter(id=train.id).update(departs_at=now_utc() - timedelta(minutes=1))


async def refunds_settled(booking_id: int) -> list[Refund]:
    for _ in range(250):
        found = await Refund.filter(payment__booking_id=booking_id)
        if found and all(r.status != "pending" for r in found):
            return found
        await asyncio.sleep(0.02)
    return found


async def closed(passenger, booking_id: int, message: str) -> None:
    """The pay page and the process post answer 409 with `message`; nothing is charged."""
    page = await passenger.get(f"/payment/pay/{booking_id}")
    assert page.status_code == 409 and message in await page.get_data(as_text=True)
    form = {"idempotency_key": "k" * 24, "amount": "1250.00", **card()}
    post = await passenger.post(f"/payment/process/{booking_id}", form)
    assert post.status_code == 409 and message in await post.get_data(as_text=True)
    assert not await Payment.exists(booking_id=booking_id)


async def test_a_departed_train_is_closed_and_its_waitlist_refunded(app, settings, new_passenger):
    train = await make_train(seats=1, fare=FARE)
    seated, waiting, late = [await new_passenger(name=n) for n in ("Seated", "Waiting", "Late")]
    seated_id = await seated.book(train)
    assert (await seated.pay(seated_id))["booking_status"] == "confirmed"
    waiting_id = await waiting.book(train)
    paid = await waiting.pay(waiting_id)
    assert paid["booking_status"] == "waitlisted"
    unpaid_id = await late.book(train)

    await leaves(train)
    assert f'id="train-{train.number}"' not in await late.text("/")
    again = await late.post("/bookings", {"train_id": str(train.id), "passenger_name": "X"})
    assert again.status_code == 409
    assert "This train has departed." in await again.get_data(as_text=True)
    await closed(late, unpaid_id, "This train has departed.")

    report = await sweep(settings, app.extensions["railserve.gateway"], now_utc())
    assert report.expired_bookings == [(await Booking.get(id=unpaid_id)).pnr]
    assert len(report.departed_refunded) == 1
    await closed(late, unpaid_id, "This train has departed.")  # expired: still the same word

    (refund,) = await refunds_settled(waiting_id)
    assert (refund.amount, refund.charge, refund.gst, refund.status) == (
        FARE - 6300,
        6000,
        300,
        "succeeded",
    )
    assert (await Booking.get(id=waiting_id)).status == "cancelled"
    assert (await Booking.get(id=seated_id)).status == "confirmed"  # travels as booked
    payment = await Payment.get(transaction_id=paid["transaction_id"])
    assert (payment.status, payment.refunded_amount) == ("refunded", FARE - 6300)
    profile = await waiting.text("/profile")
    assert "refund-succeeded" in profile and "₹1,187.00" in profile
    assert "₹60.00" in profile and "₹3.00" in profile
    assert await Notification.filter(user_id=waiting.user_id, kind="refund").exists()
    assert await Mail.filter(user_id=waiting.user_id, subject__contains="Refund").exists()
    assert await Notification.filter(user_id=late.user_id, kind="expiry").exists()

    # Running the sweep again changes nothing.
    report = await sweep(settings, app.extensions["railserve.gateway"], now_utc())
    assert (report.expired_bookings, report.departed_refunded) == ([], [])
    assert await Refund.filter(payment__booking_id=waiting_id).count() == 1
    assert await violations() == []


async def test_a_cancelled_train_takes_no_booking_and_no_payment(app, passenger):
    train = await make_train()
    booking_id = await passenger.book(train)
    await Train.filter(id=train.id).update(cancelled_at=now_utc(), cancellation_reason="Floods")
    assert f'id="train-{train.number}"' not in await passenger.text("/")
    again = await passenger.post("/bookings", {"train_id": str(train.id), "passenger_name": "X"})
    assert again.status_code == 409
    assert "This train is cancelled." in await again.get_data(as_text=True)
    await closed(passenger, booking_id, "This train is cancelled.")
    await Booking.filter(id=booking_id).update(status="cancelled")  # as cancel-train does
    await closed(passenger, booking_id, "This train is cancelled.")
    assert await violations() == []
