"""The full-train settlement and the PostgreSQL planner's parts after a read.

A settlement that read its train full locks the train's row and decides holding it; on
PostgreSQL the lock is sent alone and the rest as one statement (store.postgres). Each
case runs on the database in use and leaves the same rows on both (as test_steps.py).
"""

from __future__ import annotations

import pytest

from railserve import db, store
from railserve.models import Booking, Train
from railserve.payment import service
from railserve.payment.models import Payment
from tests.payment.test_steps import expired, normal, rows, stamps_apart, world

pytestmark = pytest.mark.usefixtures("app")


async def test_a_full_train_is_held_for_one_statement_and_the_commit():
    """A settlement that read the train full sends no one-statement attempt (bound to
    fail): on PostgreSQL, the payment's move as one statement, the train's row locked
    alone, then all the rest as ONE statement, the waitlist position counted in it (the
    row held for that statement and the COMMIT); SQLite sends them in its one call."""
    from railserve.payment.steps import settle as settling
    from tests.support.queries import count_queries

    first, second = await world(1, 1, 1)
    assert (await service.settle(first.transaction_id, True)).applied
    loaded = (await Payment.filter(id=second.id).select_related("booking__train", "user"))[0]
    with count_queries() as queries:
        outcome = await store.run(lambda: settling.settle(loaded, settling.Verdict(True)))
    assert outcome.applied and outcome.booking_status == "waitlisted"
    statements = queries.statements
    (lock,) = [i for i, sql in enumerate(statements) if sql.startswith('SELECT "cancelled_at"')]
    if db.sqlite_in_use():
        assert len(statements[lock + 1 :]) == 5, queries  # booking, stamp, count, 2 notices
    else:
        assert statements[lock].endswith("FOR UPDATE"), queries
        assert len(statements[:lock]) == 1, queries  # the payment and its event
        assert statements[0].startswith("WITH"), queries
        assert len(statements[lock + 1 :]) == 1, queries  # then COMMIT
        assert statements[lock + 1].startswith("WITH"), queries
    snapshot = normal(await rows())
    assert snapshot["notices"][1:] == [
        ("waitlist", "Booking B000000002 is waitlisted at position 1 on T100."),
    ]
    assert snapshot["mails"][1:] == [
        ("p2@example.com", "Booking B000000002 waitlisted (position 1)")
    ]
    assert await stamps_apart() == []


async def test_a_full_train_when_the_booking_expired_meanwhile():
    """Read payable, expired before the train's row was held, the train full: the
    settlement after the lock leaves its plan (PostgreSQL), is run again statement by
    statement, and asks for a refund; nothing is waitlisted."""
    from railserve.payment.steps import settle as settling

    first, second = await world(1, 1, 1)
    assert (await service.settle(first.transaction_id, True)).applied
    loaded = (await Payment.filter(id=second.id).select_related("booking__train", "user"))[0]
    booking = await Booking.get(pnr="B000000002").select_related("train", "user")
    assert await expired(booking)
    outcome = await store.run(lambda: settling.settle(loaded, settling.Verdict(True)))
    assert outcome.applied and outcome.needs_refund and outcome.booking_status is None
    snapshot = normal(await rows())
    assert snapshot["bookings"][1] == ("B000000002", "expired", False)
    assert [kind for kind, _ in snapshot["notices"]] == ["confirmation", "expiry"]
    assert snapshot["payments"][1][:2] == ("2", "success")


def counted_as_a_number(train_id: int) -> store.Step[int]:
    """A step that locks a row, then uses a count as a number (not only in text)."""
    from railserve.payment.steps.settle import LOCK_TRAIN

    yield store.Read(LOCK_TRAIN, [train_id])
    ((seats,),) = yield store.Count('SELECT "seats_left" FROM "trains" WHERE "id"=?', [train_id])
    if seats:
        yield store.Write('UPDATE "trains" SET "name"=? WHERE "id"=?', ["Counted", train_id])
    return seats + 1


async def test_a_count_used_as_a_number_is_read_for_real():
    await world(4, 1)
    train = await Train.get(number="T100")
    assert await store.run(lambda: counted_as_a_number(train.id)) == 5
    assert (await Train.get(id=train.id)).name == "Counted"
    assert await store.run(lambda: start_counted(train.id)) == 5


def counted_as_a_value(train_id: int) -> store.Step[None]:
    """A count written as a value (the train's total seats), after the train's lock."""
    from railserve.payment.steps.settle import LOCK_TRAIN

    yield store.Read(LOCK_TRAIN, [train_id])
    ((seats,),) = yield store.Count('SELECT "seats_left"+1 FROM "trains" WHERE "id"=?', [train_id])
    yield store.Write('UPDATE "trains" SET "total_seats"=? WHERE "id"=?', [seats, train_id])


async def test_a_count_written_as_a_value():
    await world(4, 1)
    train = await Train.get(number="T100")
    await store.run(lambda: counted_as_a_value(train.id))
    assert (await Train.get(id=train.id)).total_seats == 5


def start_counted(train_id: int) -> store.Step[int]:
    """The same count as the first statement: no lock, so the usual path is planned."""
    ((seats,),) = yield store.Count('SELECT "seats_left" FROM "trains" WHERE "id"=?', [train_id])
    return seats + 1


async def test_a_success_for_a_booking_closed_meanwhile_takes_no_seat():
    """Seats free, but the booking left payable before the success arrived: decided
    holding the train's row, no seat is taken, and the caller refunds the payment."""
    (payment,) = await world(5, 2)
    await Booking.filter(pnr="B000000001").update(status="cancelled")
    result = await service.settle(payment.transaction_id, True)
    assert result.applied and result.needs_refund
    snapshot = normal(await rows())
    assert snapshot["seats_left"] == [5]
    assert snapshot["bookings"] == [("B000000001", "cancelled", False)]
    assert (snapshot["notices"], snapshot["mails"]) == ([], [])
    assert snapshot["payments"][0][:2] == ("1", "success")


FORGED = "[\ufffc1\ufffc]"  # what a count's mark looked like before marks were keyed


def counted_beside_forged_marks(train_id: int) -> store.Step[None]:
    """A count written into text that also holds, as data, what looks like a count's mark."""
    from railserve.payment.steps.settle import LOCK_TRAIN

    yield store.Read(LOCK_TRAIN, [train_id])
    ((seats,),) = yield store.Count('SELECT "seats_left" FROM "trains" WHERE "id"=?', [train_id])
    yield store.Write(
        'UPDATE "trains" SET "name"=? WHERE "id"=?', [f"{seats} left {FORGED}", train_id]
    )


async def test_text_that_looks_like_a_count_s_mark_is_written_as_it_is():
    """Passengers' and operators' words reach the notices a plan counts into: only the
    planner's own marks are replaced, whatever the words hold."""
    await world(4, 1)
    train = await Train.get(number="T100")
    await store.run(lambda: counted_beside_forged_marks(train.id))
    assert (await Train.get(id=train.id)).name == f"4 left {FORGED}"


def renamed(train_id: int, name: str, *, counted: bool) -> store.Step[None]:
    """The train renamed holding its row: with the seats left counted into the name, or not."""
    from railserve.payment.steps.settle import LOCK_TRAIN

    yield store.Read(LOCK_TRAIN, [train_id])
    ((seats,),) = yield store.Count('SELECT "seats_left" FROM "trains" WHERE "id"=?', [train_id])
    text = f"{name} {seats}" if counted else name
    yield store.Write('UPDATE "trains" SET "name"=? WHERE "id"=?', [text, train_id])


async def test_a_plan_of_the_same_shape_runs_with_its_own_values():
    """PostgreSQL builds a plan's SQL once per shape: the same statements with other values
    reuse it and write their own values; text that names a count is another shape (the
    count is written into it) from text that does not."""
    await world(4, 1)
    train = await Train.get(number="T100")
    await store.run(lambda: renamed(train.id, "first", counted=True))
    assert (await Train.get(id=train.id)).name == "first 4"
    await store.run(lambda: renamed(train.id, "plain", counted=False))
    assert (await Train.get(id=train.id)).name == "plain"
    if not db.sqlite_in_use():
        from railserve.store import planner

        shapes = dict(planner._SHAPES)
    await Train.filter(id=train.id).update(seats_left=3)
    await store.run(lambda: renamed(train.id, "again", counted=True))
    assert (await Train.get(id=train.id)).name == "again 3"
    if not db.sqlite_in_use():
        assert shapes == planner._SHAPES  # built once, used again
