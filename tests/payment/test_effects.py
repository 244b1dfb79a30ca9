"""What a successful payment sets in motion: seats, waitlist, audit trail, messages."""

from railserve.invariants import violations
from railserve.models import Booking, Mail, Notification, Train
from railserve.payment.models import PaymentEvent
from tests.support.passenger import CARD_DECLINED, card, make_train


async def test_success_takes_seats_confirms_and_tells_the_passenger(passenger):
    train = await make_train(seats=5)
    booking_id = await passenger.book(train, ["A", "B"])
    await passenger.pay(booking_id)
    assert (await Train.get(id=train.id)).seats_left == 3
    assert (await Booking.get(id=booking_id)).status == "confirmed"
    notes = await Notification.filter(user_id=passenger.user_id).values_list("kind", flat=True)
    assert notes == ["confirmation"]
    mail = await Mail.get(user_id=passenger.user_id)
    assert "confirmed" in mail.subject and mail.to_address == passenger.email
    assert await violations() == []


async def test_full_train_puts_paid_bookings_on_the_waitlist_in_order(new_passenger):
    train = await make_train(seats=1)
    first, second, third = [await new_passenger(name=n) for n in ("One", "Two", "Three")]
    b1, b2, b3 = [await p.book(train) for p in (first, second, third)]
    assert (await first.pay(b1))["booking_status"] == "confirmed"
    assert (await second.pay(b2))["booking_status"] == "waitlisted"
    assert (await third.pay(b3))["booking_status"] == "waitlisted"
    assert (await Train.get(id=train.id)).seats_left == 0
    assert "position 2" in await third.text("/profile")
    assert "position 1" in await second.text("/profile")
    assert await Notification.filter(user_id=third.user_id, kind="waitlist").count() == 1
    assert await violations() == []


async def test_a_booking_is_confirmed_only_if_all_passengers_fit(passenger):
    train = await make_train(seats=2)
    booking_id = await passenger.book(train, ["A", "B", "C"])
    assert (await passenger.pay(booking_id))["booking_status"] == "waitlisted"
    assert (await Train.get(id=train.id)).seats_left == 2


async def test_failure_keeps_booking_and_seats(passenger, train):
    booking_id = await passenger.book(train)
    failed = await passenger.pay(booking_id, card(CARD_DECLINED))
    assert failed["booking_status"] == "pending_payment"
    assert (await Train.get(id=train.id)).seats_left == train.seats_left
    assert await Notification.filter(user_id=passenger.user_id).count() == 0


async def test_audit_trail_records_every_change_in_order(passenger, train):
    booking_id = await passenger.book(train)
    failed = await passenger.pay(booking_id, card(CARD_DECLINED))
    ok = await passenger.pay(booking_id)
    trail = [
        (e.payment.transaction_id, e.from_status, e.to_status, e.event, e.actor.value)
        for e in await PaymentEvent.all().order_by("id").prefetch_related("payment")
    ]
    assert trail == [
        (failed["transaction_id"], None, "pending", "start", "user"),
        (failed["transaction_id"], "pending", "failed", "fail", "gateway"),
        (ok["transaction_id"], None, "pending", "start", "user"),
        (ok["transaction_id"], "pending", "success", "succeed", "gateway"),
    ]
    assert await violations() == []
