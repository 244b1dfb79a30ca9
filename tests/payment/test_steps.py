"""Every money step, run by the executor of the database in use, leaves the same rows.

The suite runs once per database (SQLite by default, PostgreSQL with
RAILSERVE_TEST_DATABASE_URL), so each case compares the rows it leaves with one expected
snapshot that both executors must produce: the SQLite one-call executor and the PostgreSQL
one are held to the same definition of each step.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from tortoise.exceptions import IntegrityError

from railserve import db, store
from railserve.models import Booking, Mail, Notification, Train, User
from railserve.payment import cancelling, service
from railserve.payment.models import Actor, Payment, PaymentEvent
from railserve.payment.providers.models import SimulatedCharge
from railserve.payment.steps.expire import expire
from railserve.payment.steps.start import start

pytestmark = pytest.mark.usefixtures("app")


async def world(seats: int, *sizes: int) -> list[Payment]:
    """A train with `seats`, one booking per size (its passenger count), each with a
    pending attempt: bookings B000000001... and attempts TXN...1..., in order."""
    train = await Train.create(
        number="T100",
        name="Steps Express",
        origin="Mumbai",
        destination="Pune",
        departs_at=datetime.now(UTC) + timedelta(days=3),
        total_seats=max(seats, 1),
        seats_left=seats,
        fare=10000,
    )
    payments = []
    for n, size in enumerate(sizes, 1):
        user = await User.create(name=f"P{n}", email=f"p{n}@example.com", password_hash="x")
        booking = await Booking.create(
            pnr=f"B00000000{n}",
            user=user,
            train=train,
            passengers=[f"Passenger {n}.{i}" for i in range(1, size + 1)],
            passenger_count=size,
            amount=10000 * size,
        )
        payments.append(await pending_attempt(booking, n))
    return payments


async def pending_attempt(booking: Booking, n: int, key: str = "") -> Payment:
    return await Payment.create(
        transaction_id=f"TXN{n:016d}",
        booking_id=booking.id,
        user_id=booking.user_id,
        method="credit_card",
        amount=booking.amount,
        instrument="Visa •••• 4242",
        idempotency_key=key or f"key-{n:04d}-abcdefghijkl",
        pending_lock=booking.id,
    )


async def rows() -> dict[str, list]:
    """What a step leaves, without ids or times (which differ by database)."""
    return {
        "seats_left": await Train.all().values_list("seats_left", flat=True),
        "bookings": [
            (b.pnr, b.status.value, b.paid_at is not None)
            for b in await Booking.all().order_by("pnr")
        ],
        "payments": [
            (
                p.transaction_id[-1],
                p.status.value,
                p.pending_lock is not None,
                p.success_lock is not None,
                p.failure_reason,
                p.retryable,
            )
            for p in await Payment.all().order_by("transaction_id")
        ],
        "events": [
            (e.payment.transaction_id[-1], e.from_status, e.to_status, e.event, e.actor.value)
            for e in await PaymentEvent.all().order_by("id").prefetch_related("payment")
        ],
        "notices": [(n.kind, n.message) for n in await Notification.all().order_by("id")],
        "mails": await Mail.all().order_by("id").values_list("to_address", "subject"),
    }


async def stamps_apart() -> list[str]:
    """The paid bookings whose paid_at is not their successful payment's completed_at
    (one reading of the clock, steps/settle.py)."""
    return [
        p.booking.pnr
        for p in await Payment.filter(status="success").prefetch_related("booking")
        if p.booking.paid_at is not None and p.booking.paid_at != p.completed_at
    ]


def normal(snapshot: dict[str, list]) -> dict[str, list]:
    return {
        k: [tuple(r) if isinstance(r, list | tuple) else r for r in v] for k, v in snapshot.items()
    }


CONFIRMED_1 = ("confirmation", "Booking B000000001 confirmed on T100 Steps Express.")


async def test_usual_success():
    (payment,) = await world(5, 2)
    result = await service.settle(payment.transaction_id, True)
    assert result.applied and not result.needs_refund
    assert result.payment.booking.status == "confirmed"
    assert normal(await rows()) == {
        "seats_left": [3],
        "bookings": [("B000000001", "confirmed", True)],
        "payments": [("1", "success", False, True, None, None)],
        "events": [("1", "pending", "success", "succeed", "gateway")],
        "notices": [CONFIRMED_1],
        "mails": [("p1@example.com", "Booking B000000001 confirmed")],
    }
    assert await stamps_apart() == []


async def test_failure():
    (payment,) = await world(5, 1)
    result = await service.settle(payment.transaction_id, False, "Card declined", False)
    assert result.applied
    assert normal(await rows()) == {
        "seats_left": [5],
        "bookings": [("B000000001", "pending_payment", False)],
        "payments": [("1", "failed", False, False, "Card declined", False)],
        "events": [("1", "pending", "failed", "fail", "gateway")],
        "notices": [],
        "mails": [],
    }


async def test_full_train_waitlists_in_the_order_payments_succeed():
    first, second, third, _too_big = await world(1, 1, 1, 1, 3)
    for payment in (first, third, second):
        assert (await service.settle(payment.transaction_id, True)).applied
    snapshot = normal(await rows())
    assert snapshot["seats_left"] == [0]
    assert snapshot["bookings"] == [
        ("B000000001", "confirmed", True),
        ("B000000002", "waitlisted", True),
        ("B000000003", "waitlisted", True),
        ("B000000004", "pending_payment", False),
    ]
    assert snapshot["notices"] == [
        CONFIRMED_1,
        ("waitlist", "Booking B000000003 is waitlisted at position 1 on T100."),
        ("waitlist", "Booking B000000002 is waitlisted at position 2 on T100."),
    ]
    assert snapshot["mails"] == [
        ("p1@example.com", "Booking B000000001 confirmed"),
        ("p3@example.com", "Booking B000000003 waitlisted (position 1)"),
        ("p2@example.com", "Booking B000000002 waitlisted (position 2)"),
    ]
    assert [p[:4] for p in snapshot["payments"]] == [
        ("1", "success", False, True),
        ("2", "success", False, True),
        ("3", "success", False, True),
        ("4", "pending", True, False),
    ]
    assert await stamps_apart() == []


async def test_a_booking_is_confirmed_only_if_all_its_passengers_fit():
    (payment,) = await world(2, 3)
    assert (await service.settle(payment.transaction_id, True)).applied
    snapshot = normal(await rows())
    assert snapshot["seats_left"] == [2]
    assert snapshot["bookings"] == [("B000000001", "waitlisted", True)]


async def expired(booking: Booking) -> bool:
    return await store.run(lambda: expire(booking, booking.train.number, booking.user.email))


async def test_expiry_then_a_late_success():
    confirmable, full = await world(1, 1, 1)
    bookings = await Booking.all().order_by("pnr").select_related("train", "user")
    for booking in bookings:
        assert await expired(booking)
        assert not await expired(booking)
    late = await service.settle(confirmable.transaction_id, True)
    assert late.applied and not late.needs_refund  # seats left: confirmed after all
    too_late = await service.settle(full.transaction_id, True)
    assert too_late.applied and too_late.needs_refund  # full: refunded by the caller
    assert normal(await rows()) == {
        "seats_left": [0],
        "bookings": [("B000000001", "confirmed", True), ("B000000002", "expired", False)],
        "payments": [
            ("1", "success", False, True, None, None),
            ("2", "success", False, True, None, None),
        ],
        "events": [
            ("1", "pending", "success", "succeed", "gateway"),
            ("2", "pending", "success", "succeed", "gateway"),
        ],
        "notices": [
            ("expiry", "Booking B000000001 expired before it was paid."),
            ("expiry", "Booking B000000002 expired before it was paid."),
            CONFIRMED_1,
        ],
        "mails": [
            ("p1@example.com", "Booking B000000001 expired"),
            ("p2@example.com", "Booking B000000002 expired"),
            ("p1@example.com", "Booking B000000001 confirmed"),
        ],
    }


async def test_cancelling_an_attempt_and_an_unpaid_booking():
    attempt, _unpaid = await world(5, 1, 1)
    assert await cancelling.cancel_pending(attempt.id, "Cancelled by you", actor=Actor.USER)
    assert not await cancelling.cancel_pending(attempt.id, "again", actor=Actor.USER)
    booking = await Booking.get(pnr="B000000002")
    await cancelling.cancel_unpaid(booking, actor=Actor.SYSTEM, why="Train withdrawn.")
    assert normal(await rows()) == {
        "seats_left": [5],
        "bookings": [
            ("B000000001", "pending_payment", False),
            ("B000000002", "cancelled", False),
        ],
        "payments": [
            ("1", "cancelled", False, False, "Cancelled by you", True),
            ("2", "cancelled", False, False, "Train withdrawn.", False),
        ],
        "events": [
            ("1", "pending", "cancelled", "cancel", "user"),
            ("2", "pending", "cancelled", "cancel", "system"),
        ],
        "notices": [
            ("cancellation", "Booking B000000002 cancelled before payment. Train withdrawn."),
        ],
        "mails": [("p2@example.com", "Booking B000000002 cancelled")],
    }


async def test_a_lost_race_writes_nothing():
    (payment,) = await world(5, 1)
    stale = (await Payment.filter(id=payment.id).select_related("booking__train", "user"))[0]
    assert await cancelling.cancel_pending(payment.id, "Cancelled by you", actor=Actor.USER)
    late = await service.settle(payment.transaction_id, True, loaded=stale)
    assert not late.applied
    racing = await asyncio.gather(
        *(service.settle(p.transaction_id, ok) for p, ok in [(payment, True), (payment, False)])
    )
    assert not any(r.applied for r in racing)
    assert normal(await rows()) == {
        "seats_left": [5],
        "bookings": [("B000000001", "pending_payment", False)],
        "payments": [("1", "cancelled", False, False, "Cancelled by you", True)],
        "events": [("1", "pending", "cancelled", "cancel", "user")],
        "notices": [],
        "mails": [],
    }


async def test_two_verdicts_at_once_apply_once():
    (payment,) = await world(5, 1)
    results = await asyncio.gather(
        service.settle(payment.transaction_id, True),
        service.settle(payment.transaction_id, False, "Declined", False),
    )
    assert sum(r.applied for r in results) == 1
    assert await PaymentEvent.filter(payment_id=payment.id).count() == 1


async def test_a_success_on_a_cancelled_train_is_never_confirmed():
    (payment,) = await world(5, 1)
    await Train.filter(number="T100").update(
        cancelled_at=datetime.now(UTC), cancellation_reason="Flooding"
    )
    result = await service.settle(payment.transaction_id, True)
    assert result.applied and result.needs_refund
    assert normal(await rows()) == {
        "seats_left": [5],
        "bookings": [("B000000001", "cancelled", False)],
        "payments": [("1", "success", False, True, None, None)],
        "events": [("1", "pending", "success", "succeed", "gateway")],
        "notices": [],
        "mails": [],
    }


async def test_starting_an_attempt():
    (first,) = await world(5, 1)
    await service.settle(first.transaction_id, False, "Declined", True)
    booking = await Booking.get(pnr="B000000001")
    now = datetime.now(UTC)

    def attempt(n: int) -> tuple[Payment, PaymentEvent]:
        payment = Payment(
            transaction_id=f"TXN{n:016d}",
            booking_id=booking.id,
            user_id=booking.user_id,
            method="upi",
            amount=booking.amount,
            instrument="pay@upi",
            idempotency_key=f"key-{n:04d}-abcdefghijkl",
            pending_lock=booking.id,
        )
        event = PaymentEvent(from_status=None, to_status="pending", event="start", actor="user")
        return payment, event

    def booked(payment: Payment) -> SimulatedCharge:  # the gateway's record, with the attempt
        return SimulatedCharge(
            transaction_id=payment.transaction_id,
            amount=payment.amount,
            currency=payment.currency,
            succeeded=True,
            settles_at=now,
        )

    second, started = attempt(2)
    assert await store.run(lambda: start(second, started, now, ledger=booked(second))) is second
    assert second.id and second._saved_in_db and started.payment_id == second.id
    third, _ = attempt(3)
    with pytest.raises(IntegrityError):  # another attempt is pending for the booking
        await store.run(lambda: start(third, _, now, ledger=booked(third)))
    await service.settle(second.transaction_id, True)
    fourth, _ = attempt(4)
    fourth.pending_lock = None
    # Paid meanwhile: rolled back, the gateway's record with it.
    assert await store.run(lambda: start(fourth, _, now, ledger=booked(fourth))) is None
    charges = await SimulatedCharge.all().values_list("transaction_id", flat=True)
    assert charges == [second.transaction_id]
    snapshot = normal(await rows())
    assert snapshot["payments"] == [
        ("1", "failed", False, False, "Declined", True),
        ("2", "success", False, True, None, None),
    ]
    assert snapshot["events"] == [
        ("1", "pending", "failed", "fail", "gateway"),
        ("2", None, "pending", "start", "user"),
        ("2", "pending", "success", "succeed", "gateway"),
    ]
    assert snapshot["bookings"] == [("B000000001", "confirmed", True)]


async def test_seats_first_leaves_what_the_usual_order_leaves():
    from railserve.payment.steps import settle as settling

    (payment,) = await world(5, 2)
    loaded = (await Payment.filter(id=payment.id).select_related("booking__train", "user"))[0]
    verdict = settling.Verdict(True)
    assert (await store.run(lambda: settling.settle(loaded, verdict, seats_first=True))).applied
    snapshot = normal(await rows())
    assert (snapshot["seats_left"], snapshot["bookings"]) == (
        [3],
        [("B000000001", "confirmed", True)],
    )
    assert snapshot["notices"] == [CONFIRMED_1]
    assert await stamps_apart() == []


async def test_seats_taken_meanwhile_settle_again_seats_first(database_url):
    """PostgreSQL: the seats looked free, another transaction took the last one before
    this settlement could; it is rolled back whole and waitlisted instead."""
    if not database_url.startswith("postgres"):
        pytest.skip("SQLite runs one transaction at a time")
    import asyncpg

    (payment,) = await world(1, 1)
    other = await asyncpg.connect(database_url)
    try:
        holding = other.transaction()
        await holding.start()
        await other.execute('UPDATE "trains" SET "seats_left"=0')
        settling = asyncio.ensure_future(service.settle(payment.transaction_id, True))
        while not await other.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()"
        ):
            assert not settling.done(), settling
            await asyncio.sleep(0.01)
        await holding.commit()
        result = await settling
    finally:
        await other.close()
    assert result.applied and result.payment.booking.status == "waitlisted"
    snapshot = normal(await rows())
    assert snapshot["bookings"] == [("B000000001", "waitlisted", True)]
    assert snapshot["notices"] == [
        ("waitlist", "Booking B000000001 is waitlisted at position 1 on T100.")
    ]
    assert snapshot["events"] == [("1", "pending", "success", "succeed", "gateway")]
    assert await stamps_apart() == []  # read again holding the train's row, for both


async def test_usual_paths_are_one_statement_on_postgres():
    """PostgreSQL sends a step's usual path as one statement; SQLite as one call."""
    from tests.support.queries import count_queries

    (payment,) = await world(5, 1)
    booking = await Booking.get(pnr="B000000001").select_related("train", "user")
    loaded = (await Payment.filter(id=payment.id).select_related("booking__train", "user"))[0]
    from railserve.payment.steps import settle as settling

    with count_queries() as queries:
        assert (await store.run(lambda: settling.settle(loaded, settling.Verdict(True)))).applied
    if db.sqlite_in_use():
        assert queries.count == 6, queries  # the statements, in one call
    else:
        assert queries.count == 1 and queries.statements[0].startswith("WITH"), queries
    assert normal(await rows())["bookings"] == [("B000000001", "confirmed", True)]
    assert booking.status == "pending_payment"  # the instance read before is not touched
