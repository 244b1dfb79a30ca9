"""After the first part: reminders, a missed part, cancellations and refunds spread over a
booking's payments (PRODUCT.md "Paying in parts")."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from railserve import store
from railserve.invariants import violations
from railserve.models import Booking, Mail, Notification, Train
from railserve.payment import service
from railserve.payment.models import (
    Actor,
    PartStatus,
    Payment,
    PaymentEvent,
    PaymentPart,
    PaymentStatus,
    Refund,
)
from railserve.payment.refunds import settle_and_follow_up
from railserve.payment.steps.start import start
from railserve.payment.train_cancellation import cancel_train
from railserve.sweep import sweep
from tests.payment.test_parts import TWO, far_train, pay_with, plan_form


@pytest.fixture(autouse=True)
async def invariants_hold(app):
    yield
    assert await violations() == []


def gateway_of(app):
    return app.extensions["railserve.gateway"]


async def deposit_paid(passenger, seats: int = 100) -> tuple[int, Train]:
    train = await far_train(seats=seats)
    booking_id = await passenger.book(train, TWO)
    paid = await pay_with(passenger, booking_id, await plan_form(passenger, booking_id, "deposit"))
    assert paid["status"] == "success" and paid["amount"] == "625.25"
    return booking_id, train


async def kinds(user_id: int, kind: str) -> int:
    return await Notification.filter(user_id=user_id, kind=kind).count()


async def test_a_missed_balance_cancels_keeping_the_charges(app, settings, passenger):
    booking_id, train = await deposit_paid(passenger)
    balance = await PaymentPart.get(booking_id=booking_id, seq=2)
    early = await sweep(settings, gateway_of(app), balance.due_at - timedelta(minutes=1))
    assert early.cancelled_for_non_payment == []
    report = await sweep(settings, gateway_of(app), balance.due_at + timedelta(minutes=1))
    booking = await Booking.get(id=booking_id)
    assert report.cancelled_for_non_payment == [booking.pnr]
    assert booking.status == "cancelled"
    # 3A, 72 h before departure: ₹180.00 + 5 % GST for each of two passengers kept.
    (refund,) = await Refund.filter(payment__booking_id=booking_id)
    assert (refund.amount, refund.charge, refund.gst) == (62525 - 37800, 36000, 1800)
    payment = await Payment.get(booking_id=booking_id)
    assert payment.status == PaymentStatus.REFUNDED and payment.refunded_amount == 24725
    assert (await PaymentPart.get(id=balance.id)).status == PartStatus.MISSED
    assert (await Train.get(id=train.id)).seats_left == 100
    assert await kinds(passenger.user_id, "non_payment") == 1
    assert await Mail.filter(subject__contains="cancelled for non-payment").count() == 1
    again = await sweep(settings, gateway_of(app), balance.due_at + timedelta(minutes=2))
    assert again.cancelled_for_non_payment == []
    status = await passenger.status(payment.transaction_id)
    assert [p["status"] for p in status["plan"]["parts"]] == ["paid", "missed"]
    assert "cannot be paid" in await passenger.text(f"/payment/pay/{booking_id}")


async def test_reminders_once_across_sweeps_and_workers(app, settings, passenger):
    booking_id, _train = await deposit_paid(passenger)
    balance = await PaymentPart.get(booking_id=booking_id, seq=2)
    gateway = gateway_of(app)
    before = balance.due_at - timedelta(hours=73)
    await sweep(settings, gateway, before)
    assert await kinds(passenger.user_id, "reminder") == 0
    at_72 = balance.due_at - timedelta(hours=71)
    await asyncio.gather(*(sweep(settings, gateway, at_72) for _ in range(2)))
    await sweep(settings, gateway, at_72)
    assert await kinds(passenger.user_id, "reminder") == 1
    at_24 = balance.due_at - timedelta(hours=23)
    await sweep(settings, gateway, at_24)
    await sweep(settings, gateway, at_24)
    assert await kinds(passenger.user_id, "reminder") == 2
    assert await Mail.filter(subject__contains="due by").count() == 2


async def test_no_reminder_once_paid(app, settings, passenger):
    booking_id, _train = await deposit_paid(passenger)
    await pay_with(passenger, booking_id, await passenger.pay_form(booking_id))
    balance = await PaymentPart.get(booking_id=booking_id, seq=2)
    await sweep(settings, gateway_of(app), balance.due_at - timedelta(hours=23))
    assert await kinds(passenger.user_id, "reminder") == 0


async def test_a_success_after_the_cancellation_is_refunded_in_full(app, settings, passenger):
    booking_id, _train = await deposit_paid(passenger)
    balance = await PaymentPart.get(booking_id=booking_id, seq=2)
    # An attempt for the balance that the gateway answers only after the booking was
    # cancelled as a whole.
    attempt = Payment(
        transaction_id=service.new_transaction_id(),
        booking_id=booking_id,
        user_id=passenger.user_id,
        method="upi",
        amount=balance.amount,
        currency="INR",
        instrument="a@b",
        idempotency_key="late-balance-attempt-key",
        pending_lock=booking_id,
        part_id=balance.id,
    )
    started = PaymentEvent(from_status=None, to_status="pending", event="start", actor=Actor.USER)
    now = service.now_utc()
    assert await store.run(lambda: start(attempt, started, now))
    assert (await passenger.post(f"/bookings/{booking_id}/cancel")).status_code == 303
    assert (await Booking.get(id=booking_id)).status == "cancelled"
    result = await settle_and_follow_up(gateway_of(app), settings, attempt.transaction_id, True)
    assert result.applied and result.needs_refund
    late = await Payment.get(id=attempt.id)
    assert (late.status, late.refunded_amount) == (PaymentStatus.REFUNDED, balance.amount)
    assert (await PaymentPart.get(id=balance.id)).status == PartStatus.CANCELLED


async def test_refunds_spread_newest_first(passenger):
    booking_id, _train = await deposit_paid(passenger)
    await pay_with(passenger, booking_id, await passenger.pay_form(booking_id))
    quote = await (
        await passenger.get(f"/bookings/{booking_id}/cancel", {"Accept": "application/json"})
    ).get_json()
    assert quote["paid"] == "2501.00" and quote["refund"] == "2123.00"
    response = await passenger.post(f"/bookings/{booking_id}/cancel")
    assert response.status_code == 303
    deposit, balance = await Payment.filter(booking_id=booking_id).order_by("id")
    assert balance.refunded_amount == 187575  # the newest, returned whole
    assert deposit.refunded_amount == 62525 - 37800  # the charges kept out of the deposit
    assert {deposit.status, balance.status} == {PaymentStatus.REFUNDED}
    assert (await Booking.get(id=booking_id)).status == "cancelled"


async def test_subset_refused_while_a_part_is_due(passenger):
    booking_id, train = await deposit_paid(passenger)
    quote = await (
        await passenger.get(f"/bookings/{booking_id}/cancel", {"Accept": "application/json"})
    ).get_json()
    assert quote["paid"] == "625.25" and quote["refund"] == "247.25"
    assert all(p["refund"] is None for p in quote["passengers"])
    response = await passenger.post(f"/bookings/{booking_id}/cancel", {"passenger": "1"})
    assert response.status_code == 422
    assert "Pay the balance first, or cancel the whole booking." in (
        await response.get_data(as_text=True)
    )
    assert (await Booking.get(id=booking_id)).status == "confirmed"
    page = await passenger.text(f"/bookings/{booking_id}/cancel")
    assert 'name="expected_refund" value="247.25"' in page
    response = await passenger.post(
        f"/bookings/{booking_id}/cancel", {"passenger": ["1", "2"], "expected_refund": "247.25"}
    )
    assert response.status_code == 303
    (refund,) = await Refund.filter(payment__booking_id=booking_id)
    assert refund.amount == 24725
    parts = await PaymentPart.filter(booking_id=booking_id).order_by("seq")
    assert [p.status for p in parts] == [PartStatus.PAID, PartStatus.CANCELLED]
    assert (await Train.get(id=train.id)).seats_left == 100


async def test_cancel_train_refunds_every_payment(app, settings, passenger):
    booking_id, train = await deposit_paid(passenger)
    await pay_with(passenger, booking_id, await passenger.pay_form(booking_id))
    await cancel_train(gateway_of(app), settings, train.number, "flooded tracks")
    payments = await Payment.filter(booking_id=booking_id).order_by("id")
    assert [p.refunded_amount for p in payments] == [62525, 187575]
    assert {p.status for p in payments} == {PaymentStatus.REFUNDED}
    assert (await Booking.get(id=booking_id)).status == "cancelled"


async def test_cancel_train_cancels_the_parts_due(app, settings, passenger):
    booking_id, train = await deposit_paid(passenger)
    await cancel_train(gateway_of(app), settings, train.number, "flooded tracks")
    parts = await PaymentPart.filter(booking_id=booking_id).order_by("seq")
    assert [p.status for p in parts] == [PartStatus.PAID, PartStatus.CANCELLED]
    assert (await Payment.get(booking_id=booking_id)).refunded_amount == 62525


async def test_an_operators_full_refund_cancels_the_parts_due(app, passenger):
    from tests.ops.conftest import make_operator

    booking_id, _train = await deposit_paid(passenger)
    operator = await make_operator(app)
    payment = await Payment.get(booking_id=booking_id)
    response = await operator.post(
        f"/ops/payments/{payment.transaction_id}/refund", {"reason": "passenger asked by phone"}
    )
    assert response.status_code in (200, 303)
    assert (await Booking.get(id=booking_id)).status == "cancelled"
    parts = await PaymentPart.filter(booking_id=booking_id).order_by("seq")
    assert [p.status for p in parts] == [PartStatus.PAID, PartStatus.CANCELLED]
