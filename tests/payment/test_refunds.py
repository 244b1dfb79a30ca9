"""Cancelling passengers and the refunds it owes: quote, partial and whole cancellation,
refunds settled by the gateway, refused and retried, and safe under concurrency."""

import asyncio
from datetime import timedelta

import pytest

from railserve.errors import Conflict
from railserve.invariants import violations
from railserve.models import Booking, Notification, Train
from railserve.payment import service
from railserve.payment.models import Payment, Refund
from railserve.payment.providers.models import SimulatedRefund
from railserve.payment.refunds import console
from railserve.sweep import sweep
from tests.support.passenger import JSON, card, make_train
from tests.support.waiting import eventually

REFUSES_REFUNDS = "4000 0000 0000 0341"
ONE = 125000 - 18000 - 900  # a 3A passenger three days out: ₹1,250 less ₹180 and 5 % GST


def gateway_of(app):
    return app.extensions["railserve.gateway"]


async def paid_booking(passenger, train, names=("A", "B"), number=None):
    booking_id = await passenger.book(train, list(names))
    status = await passenger.pay(booking_id, card(number) if number else None)
    return booking_id, status["transaction_id"]


async def quote(passenger, booking_id, *positions):
    query = "&".join(f"passenger={p}" for p in positions)
    response = await passenger.get(f"/bookings/{booking_id}/cancel?{query}", JSON)
    return response.status_code, await response.get_json()


async def settled(transaction_id: str) -> list[Refund]:
    return await eventually(
        lambda: Refund.filter(payment__transaction_id=transaction_id).order_by("id"),
        lambda found: found and all(r.status != "pending" for r in found),
    )


async def test_quote_json_page_and_partial(passenger, train):
    booking_id, _ = await paid_booking(passenger, train)
    status, body = await quote(passenger, booking_id, 2)
    assert status == 200
    assert body == {
        "booking_id": booking_id,
        "currency": "INR",
        "cancellable": True,
        "reason": None,
        "rule": body["rule"],
        "passengers": [
            {
                "position": 2,
                "name": "B",
                "fare": "1250.00",
                "charge": "180.00",
                "gst": "9.00",
                "refund": "1061.00",
            }
        ],
        "charge": "180.00",
        "gst": "9.00",
        "refund": "1061.00",
        "paid": "2500.00",
    }
    assert "flat charge" in body["rule"]
    assert [p["position"] for p in (await quote(passenger, booking_id))[1]["passengers"]] == [1, 2]
    page = await passenger.text(f"/bookings/{booking_id}/cancel?passenger=1&passenger=2")
    assert 'name="expected_refund" value="2122.00"' in page and "GST" in page
    # Opened with no choice, the page quotes everybody, as the JSON does, and says so.
    page = await passenger.text(f"/bookings/{booking_id}/cancel")
    assert 'id="all-chosen"' in page and 'name="expected_refund" value="2122.00"' in page
    partial = await passenger.text(
        f"/bookings/{booking_id}/cancel?passenger=1", {"HX-Request": "true"}
    )
    assert "<html" not in partial and 'value="1061.00"' in partial


async def test_one_passenger_then_the_other(passenger):
    train = await make_train(seats=2)
    booking_id, txn = await paid_booking(passenger, train)
    response = await passenger.post(
        f"/bookings/{booking_id}/cancel", {"passenger": ["1"], "expected_refund": "1061.00"}
    )
    assert response.status_code == 303
    payment = await Payment.get(transaction_id=txn)
    booking = await Booking.get(id=booking_id)
    assert (payment.status, payment.refunded_amount) == ("partially_refunded", ONE)
    assert (booking.status, booking.passenger_count, booking.cancelled_positions) == (
        "confirmed",
        1,
        [1],
    )
    assert booking.amount == 250000, "the booking's amount is what was paid, unchanged"
    assert (await Train.get(id=train.id)).seats_left == 1
    profile = await passenger.text("/profile")
    assert '<del title="cancelled">A</del>' in profile
    assert (await passenger.status(txn))["refunded_amount"] == "1061.00"

    response = await passenger.post(f"/bookings/{booking_id}/cancel", {"passenger": ["2"]})
    assert response.status_code == 303
    payment = await Payment.get(transaction_id=txn)
    assert (payment.status, payment.refunded_amount) == ("refunded", 2 * ONE)
    assert (await Booking.get(id=booking_id)).status == "cancelled"
    assert (await Train.get(id=train.id)).seats_left == 2
    done = await settled(txn)
    assert [(r.passengers, r.amount, r.status) for r in done] == [
        ([1], ONE, "succeeded"),
        ([2], ONE, "succeeded"),
    ]
    assert await violations() == []


async def test_bad_positions_are_422_and_change_nothing(passenger, train):
    booking_id, txn = await paid_booking(passenger, train)
    await passenger.post(f"/bookings/{booking_id}/cancel", {"passenger": ["1"]})
    for form in ({"passenger": ["1"]}, {"passenger": ["3"]}, {"passenger": ["x"]}):
        response = await passenger.post(f"/bookings/{booking_id}/cancel", form)
        assert response.status_code == 422, form
    assert (await quote(passenger, booking_id, 7))[0] == 422
    assert await Refund.filter(payment__transaction_id=txn).count() == 1


async def test_a_crossed_window_is_409_naming_both_amounts(passenger, train):
    booking_id, txn = await paid_booking(passenger, train)
    response = await passenger.post(
        f"/bookings/{booking_id}/cancel", {"passenger": ["1"], "expected_refund": "1100.00"}
    )
    assert response.status_code == 409
    text = await response.get_data(as_text=True)
    assert "₹1,061.00" in text and "₹1,100.00" in text
    assert (await Payment.get(transaction_id=txn)).status == "success"
    assert (await Booking.get(id=booking_id)).passenger_count == 2
    assert await Refund.all().count() == 0


async def test_the_chart_is_prepared_four_hours_out(passenger, train):
    booking_id, txn = await paid_booking(passenger, train)
    await Train.filter(id=train.id).update(departs_at=train.departs_at - timedelta(hours=69))
    status, body = await quote(passenger, booking_id)
    assert status == 200 and body["cancellable"] is False
    assert body["reason"] == (
        "The chart is prepared: this ticket can no longer be cancelled online."
    )
    response = await passenger.post(f"/bookings/{booking_id}/cancel")
    assert response.status_code == 409
    assert "chart is prepared" in await response.get_data(as_text=True)
    assert (await Payment.get(transaction_id=txn)).status == "success"


async def test_a_waitlisted_ticket_pays_clerkage_only(new_passenger):
    train = await make_train(seats=1)
    holder, waiting = await new_passenger(name="Holder"), await new_passenger(name="Waiting")
    await holder.pay(await holder.book(train))
    booking_id = await waiting.book(train, ["W1", "W2"])
    assert (await waiting.pay(booking_id))["booking_status"] == "waitlisted"
    body = (await quote(waiting, booking_id, 1))[1]
    assert (body["charge"], body["gst"], body["refund"]) == ("60.00", "3.00", "1187.00")
    assert "clerkage" in body["rule"].lower()
    assert (
        await waiting.post(f"/bookings/{booking_id}/cancel", {"passenger": ["1"]})
    ).status_code == 303
    # One passenger fewer fits the one seat... but the holder still has it: still waiting.
    booking = await Booking.get(id=booking_id)
    assert (booking.status, booking.passenger_count) == ("waitlisted", 1)
    assert await violations() == []


async def test_a_smaller_waitlisted_booking_is_promoted_when_it_now_fits(new_passenger):
    train = await make_train(seats=1)
    waiting = await new_passenger(name="Waiting")
    booking_id = await waiting.book(train, ["W1", "W2"])
    assert (await waiting.pay(booking_id))["booking_status"] == "waitlisted"
    await waiting.post(f"/bookings/{booking_id}/cancel", {"passenger": ["2"]})
    assert (await Booking.get(id=booking_id)).status == "confirmed"
    assert (await Train.get(id=train.id)).seats_left == 0
    assert await violations() == []


async def test_unpaid_bookings_cancel_free_and_whole(passenger, train):
    booking_id = await passenger.book(train, ["A", "B"])
    body = (await quote(passenger, booking_id))[1]
    assert body["refund"] == "0.00" and body["cancellable"] is True
    assert (
        await passenger.post(f"/bookings/{booking_id}/cancel", {"passenger": ["1"]})
    ).status_code == 422
    assert (await passenger.post(f"/bookings/{booking_id}/cancel")).status_code == 303
    assert (await Booking.get(id=booking_id)).status == "cancelled"


async def test_another_users_booking_is_404(new_passenger, train):
    owner, other = await new_passenger(name="Owner"), await new_passenger(name="Other")
    booking_id, _ = await paid_booking(owner, train)
    assert (await quote(other, booking_id))[0] == 404
    assert (await other.post(f"/bookings/{booking_id}/cancel")).status_code == 404


async def test_refused_refunds_are_retried_then_left_failed(passenger, train, app, settings):
    booking_id, txn = await paid_booking(passenger, train, number=REFUSES_REFUNDS)
    assert (await passenger.post(f"/bookings/{booking_id}/cancel")).status_code == 303
    payment = await Payment.get(transaction_id=txn)
    assert payment.status == "refunded", "the cancellation stands; the money is owed"
    (refund,) = await Refund.filter(payment_id=payment.id)
    # The gateway's refusal arrives through its webhook.
    refund = await eventually(lambda: Refund.get(id=refund.id), lambda r: r.failure_reason)
    assert (refund.status, refund.attempts, refund.failure_reason) == (
        "pending",
        1,
        "Card account closed",
    )
    later = service.now_utc() + timedelta(minutes=1)
    for attempt in range(2, settings.refund_attempts + 1):
        await sweep(settings, gateway_of(app), later)
        await asyncio.sleep(0.05)
        refund = await Refund.get(id=refund.id)
        assert refund.attempts == attempt
        later += timedelta(minutes=1)
    await sweep(settings, gateway_of(app), later)
    refund = await Refund.get(id=refund.id)
    assert (refund.status, refund.attempts) == ("failed", settings.refund_attempts)
    assert await SimulatedRefund.filter(refund_id=refund.refund_id).count() == 5
    assert await Notification.filter(user_id=passenger.user_id, kind="refund_failed").count() == 1
    assert "could not be paid back" in await passenger.text("/profile")
    assert await violations() == []


class LostHandOver(Exception):
    pass


async def test_a_crash_before_the_gateway_heard_is_settled_once_by_the_sweep(
    passenger, train, app, settings, monkeypatch
):
    booking_id, txn = await paid_booking(passenger, train)
    gateway = gateway_of(app)
    real = gateway.refund

    async def dies(request):  # the process dies between our commit and the gateway
        raise LostHandOver

    monkeypatch.setattr(gateway, "refund", dies)
    assert (await passenger.post(f"/bookings/{booking_id}/cancel")).status_code == 303
    (refund,) = await Refund.filter(payment__transaction_id=txn)
    assert (refund.status, refund.attempts) == ("pending", 1)
    assert await SimulatedRefund.filter(refund_id=refund.refund_id).count() == 0
    monkeypatch.setattr(gateway, "refund", real)
    later = service.now_utc() + timedelta(minutes=1)
    await asyncio.gather(*(sweep(settings, gateway, later) for _ in range(3)))
    (refund,) = await settled(txn)
    assert refund.status == "succeeded"
    assert await SimulatedRefund.filter(refund_id=refund.refund_id).count() == 1
    assert await violations() == []


async def test_the_same_passenger_cancelled_twice_at_once_is_refunded_once(passenger):
    train = await make_train(seats=2)
    booking_id, txn = await paid_booking(passenger, train)
    responses = await asyncio.gather(
        *(passenger.post(f"/bookings/{booking_id}/cancel", {"passenger": ["1"]}) for _ in range(8))
    )
    codes = sorted(r.status_code for r in responses)
    assert codes.count(303) == 1 and set(codes) <= {303, 409, 422}
    assert await Refund.filter(payment__transaction_id=txn).count() == 1
    assert (await Train.get(id=train.id)).seats_left == 1
    assert await violations() == []


async def test_different_passengers_cancelled_at_once_are_each_refunded(passenger):
    train = await make_train(seats=6)
    booking_id, txn = await paid_booking(passenger, train, names=("A", "B", "C", "D"))
    responses = await asyncio.gather(
        *(
            passenger.post(f"/bookings/{booking_id}/cancel", {"passenger": [str(p)]})
            for p in (1, 2, 3)
        )
    )
    assert [r.status_code for r in responses] == [303, 303, 303]
    payment = await Payment.get(transaction_id=txn)
    assert (payment.status, payment.refunded_amount) == ("partially_refunded", 3 * ONE)
    assert (await Train.get(id=train.id)).seats_left == 5
    booking = await Booking.get(id=booking_id)
    assert (booking.passenger_count, sorted(booking.cancelled_positions)) == (1, [1, 2, 3])
    assert await violations() == []


async def test_operator_refunds_never_pass_the_payment(passenger, train, app, settings):
    booking_id, txn = await paid_booking(passenger, train, names=("A",))
    gateway = gateway_of(app)

    async def refund(amount, reason):
        return await console.refund_by_operator(
            gateway,
            settings,
            operator_id=passenger.user_id,
            transaction_id=txn,
            amount=amount,
            reason=reason,
        )

    results = await asyncio.gather(
        *(refund(100000, f"goodwill {i}") for i in range(4)), return_exceptions=True
    )
    assert sum(isinstance(r, Refund) for r in results) == 1
    assert all(getattr(r, "status", 409) == 409 for r in results if not isinstance(r, Refund))
    first = await refund(10000, "late train")
    again = await refund(10000, "late train")
    assert first.id == again.id, "the same refund pressed twice is one refund"
    rest = await refund(None, "close the account")
    payment = await Payment.get(transaction_id=txn)
    assert rest.amount == 15000 and payment.refunded_amount == 125000
    assert payment.status == "refunded"
    assert (await Booking.get(id=booking_id)).status == "cancelled"
    with pytest.raises(Conflict):
        await refund(1, "more")
    assert await violations() == []
