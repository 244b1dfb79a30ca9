"""Refund edges: operator refunds refused up front, gateways answering at once, and the
sweep acting on what the gateway reports."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from railserve.errors import Conflict, Invalid, NotFound
from railserve.invariants import violations
from railserve.models import Booking, Notification, Train
from railserve.payment import service
from railserve.payment.models import Payment, Refund
from railserve.payment.providers import RefundResult, RefundState
from railserve.payment.providers.models import SimulatedRefund
from railserve.payment.refunds import console
from railserve.sweep import sweep
from tests.payment.test_refunds import gateway_of, paid_booking
from tests.support.passenger import JSON, card

DECLINED = "4000 0000 0000 0002"


def operator_refund(app, settings, passenger, txn, amount, reason):
    return console.refund_by_operator(
        gateway_of(app),
        settings,
        operator_id=passenger.user_id,
        transaction_id=txn,
        amount=amount,
        reason=reason,
    )


async def test_operator_refunds_are_refused_before_touching_the_payment(
    app, settings, passenger, train
):
    """Bad reason or amount, unknown or unpaid attempt, too much: refused, nothing owed."""
    _, txn = await paid_booking(passenger, train, names=("A",))
    with pytest.raises(Invalid) as short:
        await operator_refund(app, settings, passenger, txn, 100, "  x ")
    assert short.value.status == 422 and "reason" in short.value.errors
    with pytest.raises(Invalid) as long:
        await operator_refund(app, settings, passenger, txn, 100, "y" * 301)
    assert "reason" in long.value.errors
    with pytest.raises(Invalid) as zero:
        await operator_refund(app, settings, passenger, txn, 0, "goodwill")
    assert "amount" in zero.value.errors
    with pytest.raises(NotFound):
        await operator_refund(app, settings, passenger, "TXN-nobody", 100, "goodwill")
    with pytest.raises(Conflict, match=r"At most ₹1,250\.00"):
        await operator_refund(app, settings, passenger, txn, 125001, "goodwill")
    declined = await passenger.pay(await passenger.book(train, ["B"]), card(DECLINED))
    assert declined["status"] == "failed"
    with pytest.raises(Conflict, match="this one is failed"):
        await operator_refund(app, settings, passenger, declined["transaction_id"], 100, "goodwill")
    assert await Refund.all().count() == 0
    payment = await Payment.get(transaction_id=txn)
    assert (payment.status, payment.refunded_amount) == ("success", 0)


async def test_a_refund_refused_at_once_stays_pending_with_the_reason(
    app, passenger, train, monkeypatch
):
    """`RefundResult(ok=False)` is a refusal to retry, not a failure yet."""

    async def refuses(request):
        return RefundResult(False, reason="Beneficiary bank offline")

    _, txn = await paid_booking(passenger, train)
    booking_id = (await Payment.get(transaction_id=txn)).booking_id
    monkeypatch.setattr(gateway_of(app), "refund", refuses)
    assert (await passenger.post(f"/bookings/{booking_id}/cancel")).status_code == 303
    (refund,) = await Refund.filter(payment__transaction_id=txn)
    assert (refund.status, refund.attempts, refund.failure_reason) == (
        "pending",
        1,
        "Beneficiary bank offline",
    )
    assert await violations() == []


async def test_a_refund_settled_at_once_is_succeeded_with_its_reference(
    app, passenger, train, monkeypatch
):
    """A gateway that pays back synchronously settles the refund in the same request."""

    async def pays_now(request):
        return RefundResult(True, reference="SYNC42", state="succeeded")

    _, txn = await paid_booking(passenger, train)
    booking_id = (await Payment.get(transaction_id=txn)).booking_id
    monkeypatch.setattr(gateway_of(app), "refund", pays_now)
    assert (await passenger.post(f"/bookings/{booking_id}/cancel")).status_code == 303
    (refund,) = await Refund.filter(payment__transaction_id=txn)
    assert (refund.status, refund.gateway_reference) == ("succeeded", "SYNC42")
    assert await Notification.filter(user_id=passenger.user_id, kind="refund_done").exists()


async def lost_refund(app, passenger, train, monkeypatch) -> Refund:
    """A refund whose hand-over to the gateway was lost (attempt 1 claimed, not heard)."""

    async def unreachable(request):
        raise ConnectionError("gateway down")

    _, txn = await paid_booking(passenger, train)
    booking_id = (await Payment.get(transaction_id=txn)).booking_id
    monkeypatch.setattr(gateway_of(app), "refund", unreachable)
    assert (await passenger.post(f"/bookings/{booking_id}/cancel")).status_code == 303
    (refund,) = await Refund.filter(payment__transaction_id=txn)
    assert (refund.status, refund.attempts) == ("pending", 1)
    return refund


async def test_the_sweep_settles_a_refund_the_gateway_reports_succeeded(
    app, settings, passenger, train, monkeypatch
):
    refund = await lost_refund(app, passenger, train, monkeypatch)

    async def paid(refund_id):
        return RefundState("succeeded", 1, "LATE7")

    monkeypatch.setattr(gateway_of(app), "query_refund", paid)
    later = service.now_utc() + timedelta(minutes=1)
    await sweep(settings, gateway_of(app), later)
    refund = await Refund.get(id=refund.id)
    assert (refund.status, refund.gateway_reference) == ("succeeded", "LATE7")


async def test_the_sweep_leaves_a_refund_the_gateway_still_processes(
    app, settings, passenger, train, monkeypatch
):
    refund = await lost_refund(app, passenger, train, monkeypatch)

    async def processing(refund_id):
        return RefundState("pending", 1, "WIP")

    monkeypatch.setattr(gateway_of(app), "query_refund", processing)
    later = service.now_utc() + timedelta(minutes=1)
    await sweep(settings, gateway_of(app), later)
    refund = await Refund.get(id=refund.id)
    assert (refund.status, refund.attempts) == ("pending", 1)
    assert await SimulatedRefund.filter(refund_id=refund.refund_id).count() == 0


async def test_money_already_returned_caps_the_quote_and_the_cancellation_goes_through(
    app, settings, passenger, train
):
    booking_id, txn = await paid_booking(passenger, train)  # two passengers, ₹2,500.00
    await operator_refund(app, settings, passenger, txn, 200000, "goodwill: a late train")
    response = await passenger.get(f"/bookings/{booking_id}/cancel", JSON)
    offer = await response.get_json()
    assert offer["cancellable"] and offer["refund"] == "500.00"  # not 2 × ₹1,061.00
    assert "already refunded" in offer["rule"] and "₹2,000.00" in offer["rule"]
    assert sum(Decimal(p["refund"]) for p in offer["passengers"]) == Decimal("500.00")
    page = await passenger.text(f"/bookings/{booking_id}/cancel")
    assert 'name="expected_refund" value="500.00"' in page
    train_before = await Train.get(id=train.id)
    cancelled = await passenger.post(
        f"/bookings/{booking_id}/cancel", {"expected_refund": "500.00"}
    )
    assert cancelled.status_code == 303, await cancelled.get_data(as_text=True)
    payment = await Payment.get(transaction_id=txn)
    assert (payment.status, payment.refunded_amount) == ("refunded", 250000)
    assert (await Booking.get(id=booking_id)).status == "cancelled"
    assert (await Train.get(id=train.id)).seats_left == train_before.seats_left + 2
    last = await Refund.filter(payment_id=payment.id).order_by("-id").first()
    assert last.amount == 50000 and "already refunded" in last.reason
    assert await violations() == []


async def test_one_passenger_of_two_after_a_goodwill_refund(app, settings, passenger, train):
    booking_id, txn = await paid_booking(passenger, train)
    await operator_refund(app, settings, passenger, txn, 200000, "goodwill: a late train")
    offer = await (
        await passenger.get(f"/bookings/{booking_id}/cancel?passenger=2", JSON)
    ).get_json()
    assert offer["refund"] == "500.00" and offer["passengers"][0]["refund"] == "500.00"
    response = await passenger.post(f"/bookings/{booking_id}/cancel", {"passenger": "2"})
    assert response.status_code == 303
    again = await (await passenger.get(f"/bookings/{booking_id}/cancel", JSON)).get_json()
    assert again["refund"] == "0.00" and again["cancellable"]
    assert (await passenger.post(f"/bookings/{booking_id}/cancel")).status_code == 303
    payment = await Payment.get(transaction_id=txn)
    assert (payment.status, payment.refunded_amount) == ("refunded", 250000)
    assert (await Booking.get(id=booking_id)).status == "cancelled"
    assert await violations() == []
