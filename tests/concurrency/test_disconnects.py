"""Clients that hang up mid-request must not wedge the app (nor SQLite's connection lock)."""

from __future__ import annotations

import asyncio
import random

from railserve.models import Booking, BookingStatus
from railserve.payment.models import Payment, PaymentStatus
from tests.concurrency.conftest import World, new_key
from tests.support.passenger import HX, JSON, card

BURSTS = 4
PER_BURST = 50  # 200 requests in all, every one cut off


async def test_hung_up_requests_wedge_nothing(world: World):
    rng = random.Random(5)
    train = await world.new_train(seats=100)
    people = await world.new_passengers(6)
    polled = [(p, await p.start(await p.book(train))) for p in people]
    unpaid = [(p, await p.book(train)) for p in people for _ in range(4)]
    amount = (await people[0].pay_form(unpaid[0][1]))["amount"]

    def request(index: int):
        # From before the app has read the request to well into its transactions.
        after = rng.uniform(0, 0.25)
        if index % 2:
            person, txn = polled[index % len(polled)]
            headers = JSON if index % 4 == 1 else HX
            path = f"/payment/status/{txn}"
            return world.hang_up(person, "GET", path, after=after, headers=headers)
        person, booking_id = unpaid[index % len(unpaid)]
        form = {"amount": amount, "idempotency_key": new_key(), **card()}
        path = f"/payment/process/{booking_id}"
        whole = index % 8 != 0  # some hang up before their body has arrived
        return world.hang_up(person, "POST", path, form, after=after, whole_body=whole)

    for burst in range(BURSTS):
        await asyncio.gather(*(request(burst * PER_BURST + i) for i in range(PER_BURST)))
        person, txn = polled[burst % len(polled)]
        # Still answering (a wedged process never would); how fast is bench/'s question.
        answer = await asyncio.wait_for(person.status(txn), timeout=30)
        assert answer["transaction_id"] == txn

    # Every attempt that got started reaches the gateway and settles: none is orphaned
    # by its client hanging up between the database and the gateway.
    await world.settled()
    for _person, booking_id in unpaid:
        statuses = await Payment.filter(booking_id=booking_id).values_list("status", flat=True)
        booking = await Booking.get(id=booking_id)
        assert statuses.count(PaymentStatus.SUCCESS) <= 1
        paid = PaymentStatus.SUCCESS in statuses
        assert (booking.status == BookingStatus.CONFIRMED) == paid, (booking.status, statuses)
    # And the app still does its job.
    final = await people[0].pay(await people[0].book(train))
    assert (final["status"], final["booking_status"]) == ("success", "confirmed")
    await world.check()
