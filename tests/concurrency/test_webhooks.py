"""Gateway events that arrive together: one transition, one set of effects, whoever wins.

The gateway is slow here (30 s), so the test speaks for it: every event below is signed
as the gateway signs it, and arrives long before the simulator's own report would.
"""

from __future__ import annotations

import asyncio

import pytest

from railserve.models import Booking, BookingStatus, Mail, Notification, Train
from railserve.payment.models import Payment, PaymentEvent, PaymentStatus, Refund, WebhookEvent
from tests.concurrency.conftest import World, gateway_event

RACES = 6  # bookings per race test: enough for both sides to win now and then


@pytest.fixture(scope="module")
def gateway_delay() -> float:
    return 30.0


async def pending_attempts(world: World, train: Train, count: int) -> list[tuple[object, Payment]]:
    """`count` bookings on `train`, each with one attempt the gateway has not answered."""
    person = await world.new_passenger()
    booking_ids = [await person.book(train) for _ in range(count)]
    transaction_ids = await asyncio.gather(*(person.start(b) for b in booking_ids))
    return [(person, await Payment.get(transaction_id=t)) for t in transaction_ids]


async def effects(payment: Payment) -> dict[str, object]:
    """What one payment has changed: its audit moves, booking, notifications and mail."""
    booking = await Booking.get(id=payment.booking_id)
    moves = await PaymentEvent.filter(payment_id=payment.id).exclude(event="webhook_rejected")
    return {
        "status": (await Payment.get(id=payment.id)).status,
        "moves": [(m.from_status, m.to_status) for m in moves],
        "booking": booking.status,
        "notifications": await Notification.filter(booking_id=booking.id).count(),
        "mails": await Mail.filter(booking_id=booking.id).count(),
    }


SUCCEEDED = {
    "status": PaymentStatus.SUCCESS,
    "moves": [(None, "pending"), ("pending", "success")],
    "booking": BookingStatus.CONFIRMED,
    "notifications": 1,
    "mails": 1,
}


async def test_one_event_delivered_ten_times_at_once(world: World):
    train = await world.new_train(seats=10)
    [(_, payment)] = await pending_attempts(world, train, 1)
    event = gateway_event(payment, "payment.succeeded")

    replies = await asyncio.gather(*(world.webhook(event) for _ in range(10)))
    assert [status for status, _ in replies] == [200] * 10, replies
    results = sorted(reply["result"] for _, reply in replies)
    assert results.count("applied") == 1, results
    assert await effects(payment) == SUCCEEDED
    assert await WebhookEvent.filter(id=event["id"]).count() == 1
    assert (await Train.get(id=train.id)).seats_left == 9
    await world.check()


async def test_failure_and_success_for_one_attempt_at_once(world: World):
    train = await world.new_train(seats=10)
    attempts = await pending_attempts(world, train, RACES)

    async def race(payment: Payment):
        failed = gateway_event(payment, "payment.failed", "Declined by bank")
        succeeded = gateway_event(payment, "payment.succeeded")
        return await asyncio.gather(world.webhook(failed), world.webhook(succeeded))

    outcomes = await asyncio.gather(*(race(payment) for _, payment in attempts))
    successes = 0
    for (_, payment), ((fail_status, _), (ok_status, _)) in zip(attempts, outcomes, strict=False):
        assert sorted([fail_status, ok_status]) == [200, 409], (fail_status, ok_status)
        seen = await effects(payment)
        if ok_status == 200:
            successes += 1
            assert seen == SUCCEEDED
        else:
            assert seen == {
                "status": PaymentStatus.FAILED,
                "moves": [(None, "pending"), ("pending", "failed")],
                "booking": BookingStatus.PENDING_PAYMENT,
                # The captured money goes back in full, and the passenger is told.
                "notifications": 1,
                "mails": 1,
            }
            assert await Refund.filter(payment_id=payment.id, amount=payment.amount).count() == 1
        # The loser is on record, and moved nothing.
        assert (
            await PaymentEvent.filter(payment_id=payment.id, event="webhook_rejected").count() == 1
        )
    assert (await Train.get(id=train.id)).seats_left == 10 - successes
    await world.check()


async def test_user_cancel_races_gateway_success(world: World):
    train = await world.new_train(seats=10)
    attempts = await pending_attempts(world, train, RACES)

    async def race(person, payment: Payment):
        return await asyncio.gather(
            person.post(f"/payment/cancel/{payment.transaction_id}", {}),
            world.webhook(gateway_event(payment, "payment.succeeded")),
        )

    outcomes = await asyncio.gather(*(race(person, payment) for person, payment in attempts))
    successes = 0
    for (_, payment), (cancel, (hook_status, hook)) in zip(attempts, outcomes, strict=False):
        seen = await effects(payment)
        if hook_status == 200:
            assert (cancel.status_code, hook["result"]) == (409, "applied")
            assert seen == SUCCEEDED
            successes += 1
        else:
            assert (cancel.status_code, hook_status) == (303, 409)
            assert seen == {
                "status": PaymentStatus.CANCELLED,
                "moves": [(None, "pending"), ("pending", "cancelled")],
                "booking": BookingStatus.PENDING_PAYMENT,
                # The captured money goes back in full, and the passenger is told.
                "notifications": 1,
                "mails": 1,
            }
            assert await Refund.filter(payment_id=payment.id, amount=payment.amount).count() == 1
    assert (await Train.get(id=train.id)).seats_left == 10 - successes
    await world.check()
