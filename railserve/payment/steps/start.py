"""Starting an attempt: the pending payment, its audit event, and the booking's check.

The booking was read before the transaction: an attempt that succeeded (or a
cancellation) since then must stop this one, or the gateway would be asked to take the
money twice. The payment is inserted first and the booking updated second (payments
before bookings, the lock order of every step). A unique key refusing the payment (the
same idempotency key, or another attempt pending for the booking: `pending_lock`) raises
the ORM's IntegrityError; a booking no longer payable rolls back and answers None.

Paying in parts: an attempt for a later part (`attempt.part_id` set) needs that part still
due and not yet fallen due; an attempt for the first part writes the booking's chosen plan
and its parts (`parts`, rewritten by each first-part attempt until one succeeds, which
fixes them: steps/settle.py) and binds itself to part 1.

A simulated gateway's record of the charge (its ledger shares our database) is written
here too, with the attempt, rather than in a transaction (a round trip, a commit) of its own.
"""

from __future__ import annotations

from datetime import datetime

from tortoise.models import Model

from railserve.models import BookingStatus
from railserve.payment.models import PartStatus, Payment, PaymentEvent, PaymentPart
from railserve.payment.plans import FULL, Part
from railserve.store import Insert, Read, Rollback, Step, Write

STILL_PAYABLE = 'UPDATE "bookings" SET "updated_at"=? WHERE "id"=? AND "status"=?'
PLAN_CHOSEN = (
    'UPDATE "bookings" SET "updated_at"=?,"plan"=? '
    'WHERE "id"=? AND "status"=? AND "plan_fixed_at" IS NULL'
)
PART_STILL_DUE = (
    'UPDATE "payment_parts" SET "updated_at"=? WHERE "id"=? AND "status"=? AND "due_at">?'
)
PART_REWRITTEN = (
    'UPDATE "payment_parts" SET "of"=?,"amount"=?,"due_at"=?,"status"=?,"updated_at"=? '
    'WHERE "booking_id"=? AND "seq"=?'
)
PARTS_BEYOND = 'DELETE FROM "payment_parts" WHERE "booking_id"=? AND "seq">?'
PARTS_DROPPED = 'UPDATE "payment_parts" SET "status"=?,"updated_at"=? WHERE "booking_id"=?'
FIRST_PART = 'SELECT "id" FROM "payment_parts" WHERE "booking_id"=? AND "seq"=1'
BIND_PART = 'UPDATE "payments" SET "part_id"=? WHERE "id"=?'


def start(
    attempt: Payment,
    started: PaymentEvent,
    now: datetime,
    plan: str | None = None,
    parts: tuple[Part, ...] = (),
    ledger: Model | None = None,
) -> Step[Payment | None]:
    """`plan`: None when the booking stays on `full` as it was (no part), else the plan
    chosen for the first part with its `parts` (`full`: an earlier choice undone).
    `ledger`: the gateway's record of the charge to come, when the gateway keeps its books
    in our database (a simulator's `ledger_row`), committed with the attempt."""
    payment_id = yield Insert(attempt)
    if attempt.part_id is not None:  # a later part of a booking paid in parts
        due = PartStatus.DUE.value
        yield Write(
            PART_STILL_DUE, [now, attempt.part_id, due, now], expect=1, otherwise=Rollback(None)
        )
    elif plan is None:
        yield Write(
            STILL_PAYABLE,
            [now, attempt.booking_id, BookingStatus.PENDING_PAYMENT.value],
            expect=1,
            otherwise=Rollback(None),
        )
    elif plan == FULL:
        unpaid = BookingStatus.PENDING_PAYMENT.value
        yield Write(
            PLAN_CHOSEN, [now, FULL, attempt.booking_id, unpaid], expect=1, otherwise=Rollback(None)
        )
        yield Write(PARTS_DROPPED, [PartStatus.CANCELLED.value, now, attempt.booking_id])
    else:
        attempt.part_id = yield from choose_plan(attempt, plan, parts, now)
        yield Write(BIND_PART, [attempt.part_id, payment_id])
    started.payment_id = payment_id
    yield Insert(started)
    if ledger is not None:
        yield Insert(ledger)
    return attempt


def choose_plan(attempt: Payment, plan: str, parts: tuple[Part, ...], now: datetime) -> Step[int]:
    """The booking on `plan` with `parts` (its plan not yet fixed): part 1's id."""
    unpaid = BookingStatus.PENDING_PAYMENT.value
    booking_id = attempt.booking_id
    yield Write(PLAN_CHOSEN, [now, plan, booking_id, unpaid], expect=1, otherwise=Rollback(None))
    due = PartStatus.DUE.value
    for part in parts:
        values = [len(parts), part.amount, part.due_at, due, now, booking_id, part.seq]
        if not (yield Write(PART_REWRITTEN, values)):
            yield Insert(
                PaymentPart(
                    booking_id=booking_id,
                    seq=part.seq,
                    of=len(parts),
                    amount=part.amount,
                    currency=attempt.currency,
                    due_at=part.due_at,
                    status=PartStatus.DUE,
                    reminders_sent=0,
                    updated_at=now,
                )
            )
    yield Write(PARTS_BEYOND, [booking_id, len(parts)])
    ((part_id,),) = yield Read(FIRST_PART, [booking_id])
    return part_id
