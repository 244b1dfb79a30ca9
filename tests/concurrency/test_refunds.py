"""Cancellations racing each other, in-process and against two workers: one refund per
passenger, seats exact, refunds never past the payment, the waitlist promoted once."""

from __future__ import annotations

import asyncio
from collections import Counter

from railserve.models import Booking, BookingStatus, Train
from railserve.payment.models import Payment, PaymentStatus, Refund, RefundStatus
from tests.concurrency.conftest import World
from tests.support.waiting import eventually

ONE = 125000 - 18000 - 900  # one 3A passenger three days out


async def refunds_settled(transaction_id: str) -> list[Refund]:
    found = await eventually(
        lambda: Refund.filter(payment__transaction_id=transaction_id),
        lambda found: found and all(r.status != RefundStatus.PENDING for r in found),
        interval=0.05,
    )
    assert found and all(r.status != RefundStatus.PENDING for r in found), found
    return found


async def test_the_same_passenger_cancelled_from_many_requests_is_refunded_once(world: World):
    train = await world.new_train(seats=4)
    person = await world.new_passenger()
    booking_id = await person.book(train, ["A", "B", "C"])
    txn = (await person.pay(booking_id))["transaction_id"]

    responses = await asyncio.gather(
        *(person.post(f"/bookings/{booking_id}/cancel", {"passenger": "2"}) for _ in range(12))
    )
    codes = Counter(r.status_code for r in responses)
    assert codes[303] == 1 and set(codes) <= {303, 409, 422}, codes
    (refund,) = await refunds_settled(txn)
    assert (refund.passengers, refund.amount, refund.status) == ([2], ONE, "succeeded")
    payment = await Payment.get(transaction_id=txn)
    assert (payment.status, payment.refunded_amount) == (PaymentStatus.PARTIALLY_REFUNDED, ONE)
    assert (await Train.get(id=train.id)).seats_left == 2
    await world.check()


async def test_every_passenger_cancelled_at_once_is_refunded_exactly(world: World):
    train = await world.new_train(seats=6)
    person = await world.new_passenger()
    names = ["A", "B", "C", "D", "E", "F"]
    booking_id = await person.book(train, names)
    txn = (await person.pay(booking_id))["transaction_id"]

    # Each passenger alone, and the whole booking, all at once.
    singles = [
        person.post(f"/bookings/{booking_id}/cancel", {"passenger": str(p)}) for p in range(1, 7)
    ]
    whole = [person.post(f"/bookings/{booking_id}/cancel") for _ in range(3)]
    responses = await asyncio.gather(*singles, *whole)
    assert all(r.status_code in (303, 409, 422) for r in responses)
    found = await refunds_settled(txn)
    covered = Counter(p for r in found for p in r.passengers)
    assert covered == Counter(range(1, 7)), "each passenger refunded exactly once"
    payment = await Payment.get(transaction_id=txn)
    assert payment.status == PaymentStatus.REFUNDED
    assert payment.refunded_amount == sum(r.amount for r in found) == 6 * ONE
    assert (await Booking.get(id=booking_id)).status == BookingStatus.CANCELLED
    assert (await Train.get(id=train.id)).seats_left == 6
    await world.check()


async def test_cancellations_racing_promote_the_waitlist_once(world: World):
    train = await world.new_train(seats=2)
    owners = await world.new_passengers(3)
    held = []
    for person in owners[:2]:
        booking_id = await person.book(train)
        await person.pay(booking_id)
        held.append((person, booking_id))
    (waiting,) = owners[2:]
    queued = await waiting.book(train, ["W1", "W2"])
    assert (await waiting.pay(queued))["booking_status"] == "waitlisted"

    await asyncio.gather(*(p.post(f"/bookings/{b}/cancel") for p, b in held for _ in range(3)))
    assert (await Booking.get(id=queued)).status == BookingStatus.CONFIRMED
    assert (await Train.get(id=train.id)).seats_left == 0
    assert await Refund.filter(payment__booking_id__in=[b for _, b in held]).count() == 2
    await world.check()
