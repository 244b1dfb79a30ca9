"""Many payments at once: one success per booking, one attempt per key, seats never oversold."""

from __future__ import annotations

import asyncio
import re
from collections import Counter

from railserve.models import Booking, BookingStatus, Notification, Train
from railserve.payment.models import Payment, PaymentEvent, PaymentStatus
from railserve.payment.providers.models import SimulatedCharge
from railserve.seats import waitlist_position
from tests.concurrency.conftest import World, new_key
from tests.support.passenger import card

TXN_IN_PAGE = re.compile(r'id="payment-(TXN[A-Z0-9]{16})"')


async def body(response) -> str:
    """Text of a Quart or an httpx response."""
    if hasattr(response, "get_data"):
        return await response.get_data(as_text=True)
    return response.text


async def test_fifty_attempts_with_different_keys_give_one_success(world: World):
    train = await world.new_train(seats=10)
    person = await world.new_passenger()
    booking_id = await person.book(train)
    form = {**await person.pay_form(booking_id), **card()}

    async def attempt(index: int):
        # Spread over the gateway's delay, so requests land before, during and after
        # the first attempt settles.
        await asyncio.sleep(index * 0.012)
        fields = {**form, "idempotency_key": new_key()}
        return await person.post(f"/payment/process/{booking_id}", fields, htmx=index % 2 == 0)

    responses = await asyncio.gather(*(attempt(i) for i in range(50)))
    codes = Counter(r.status_code for r in responses)
    assert set(codes) <= {200, 303, 409}, codes
    await world.settled()

    attempts = await Payment.filter(booking_id=booking_id)
    assert [p.status for p in attempts].count(PaymentStatus.SUCCESS) == 1, attempts
    assert codes[200] + codes[303] == len(attempts), (codes, len(attempts))
    booking = await Booking.get(id=booking_id)
    assert booking.status == BookingStatus.CONFIRMED
    assert (await Train.get(id=train.id)).seats_left == 9
    charged = await SimulatedCharge.filter(
        transaction_id__in=[p.transaction_id for p in attempts], succeeded=True
    ).count()
    assert charged == 1, "the gateway was asked to take the money more than once"
    await world.check()


async def test_one_key_posted_twenty_times_is_one_attempt(world: World):
    train = await world.new_train(seats=10)
    person = await world.new_passenger()
    booking_id = await person.book(train)
    form = {**await person.pay_form(booking_id), **card()}

    responses = await asyncio.gather(
        *(person.post(f"/payment/process/{booking_id}", form, htmx=i % 2 == 1) for i in range(20))
    )
    named: set[str] = set()
    for response in responses:
        if response.status_code == 303:
            named.add(response.headers["Location"].rsplit("/", 1)[-1])
        else:
            assert response.status_code == 200, (response.status_code, await body(response))
            named.update(TXN_IN_PAGE.findall(await body(response)))
    attempts = await Payment.filter(booking_id=booking_id)
    assert len(attempts) == 1
    assert named == {attempts[0].transaction_id}
    assert await PaymentEvent.filter(payment_id=attempts[0].id, event="start").count() == 1
    assert await SimulatedCharge.filter(transaction_id=attempts[0].transaction_id).count() == 1
    final = await person.wait_final(attempts[0].transaction_id)
    assert final["status"] == "success"
    await world.check()


async def pay_all_at_once(world: World, train: Train, people: list) -> list[int]:
    """Each person books one seat, then all pay at the same moment; returns booking ids."""
    booking_ids = await asyncio.gather(*(p.book(train) for p in people))
    forms = await asyncio.gather(
        *(p.pay_form(b) for p, b in zip(people, booking_ids, strict=False))
    )
    responses = await asyncio.gather(
        *(
            p.post(f"/payment/process/{b}", {**form, **card()})
            for p, b, form in zip(people, booking_ids, forms, strict=False)
        )
    )
    assert [r.status_code for r in responses] == [303] * len(people)
    await world.settled()
    return list(booking_ids)


async def test_three_seats_twenty_payers(world: World):
    train = await world.new_train(seats=3)
    people = await world.new_passengers(20)
    booking_ids = await pay_all_at_once(world, train, people)

    bookings = await Booking.filter(id__in=booking_ids).order_by("paid_at", "id")
    confirmed = [b for b in bookings if b.status == BookingStatus.CONFIRMED]
    waitlisted = [b for b in bookings if b.status == BookingStatus.WAITLISTED]
    assert (len(confirmed), len(waitlisted)) == (3, 17)
    assert (await Train.get(id=train.id)).seats_left == 0
    # Arrival order: everyone confirmed paid before everyone waitlisted, and the
    # waitlist positions follow payment time, as each passenger was told.
    assert max(b.paid_at for b in confirmed) < min(b.paid_at for b in waitlisted)
    assert [await waitlist_position(b) for b in waitlisted] == list(range(1, 18))
    told = {
        n.booking_id: int(re.search(r"position (\d+)", n.message).group(1))
        for n in await Notification.filter(booking_id__in=booking_ids, kind="waitlist")
    }
    assert [told[b.id] for b in waitlisted] == list(range(1, 18))
    await world.check()


async def test_cancellations_fill_each_freed_seat_once(world: World):
    train = await world.new_train(seats=4)
    people = await world.new_passengers(16)
    booking_ids = await pay_all_at_once(world, train, people)
    owner = dict(zip(booking_ids, people, strict=False))
    bookings = await Booking.filter(id__in=booking_ids).order_by("paid_at", "id")
    confirmed = [b.id for b in bookings if b.status == BookingStatus.CONFIRMED]
    waitlisted = [b.id for b in bookings if b.status == BookingStatus.WAITLISTED]
    assert (len(confirmed), len(waitlisted)) == (4, 12)

    # Every confirmed booking is cancelled, and so are the two next in line (racing their
    # own promotion) and one from the middle of the waitlist, all at the same moment.
    leaving = [*confirmed, waitlisted[0], waitlisted[1], waitlisted[6]]
    responses = await asyncio.gather(*(owner[b].post(f"/bookings/{b}/cancel", {}) for b in leaving))
    assert [r.status_code for r in responses] == [303] * len(leaving)

    staying = [b for b in waitlisted if b not in leaving]
    after = {b.id: b.status for b in await Booking.filter(id__in=booking_ids)}
    assert all(after[b] == BookingStatus.CANCELLED for b in leaving)
    assert [after[b] for b in staying] == [BookingStatus.CONFIRMED] * 4 + [
        BookingStatus.WAITLISTED
    ] * (len(staying) - 4)
    assert (await Train.get(id=train.id)).seats_left == 0
    promotions = Counter(
        await Notification.filter(booking_id__in=booking_ids, kind="promotion").values_list(
            "booking_id", flat=True
        )
    )
    assert all(count == 1 for count in promotions.values()), promotions
    assert set(staying[:4]) <= set(promotions)
    refunded = await Payment.filter(booking_id__in=leaving, status=PaymentStatus.REFUNDED).count()
    assert refunded == len(leaving)
    await world.check()
