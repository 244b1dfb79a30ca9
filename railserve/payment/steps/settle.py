"""Settlement: the gateway's verdict on a pending attempt, with every effect it has.

Success: the payment's compare-and-set and audit event; the seats, taken by one
conditional update, or else the waitlist in the order payments succeed; the booking
confirmed or waitlisted; the notification and the mail. Failure: the payment's move and
audit event (the booking stays payable). A success the booking cannot take (it expired
and the train is full, it moved meanwhile, or the railway cancelled the train) leaves the
booking unconfirmed and asks the caller to refund the payment in full (`needs_refund`).

Time: the payment's `completed_at` and the booking's `paid_at` are one reading of the
clock, so that the waitlist (ordered by `paid_at`) is the order the payments succeeded.
It is taken inside the step (on SQLite, which runs the step holding the whole database,
that is already where the order is decided). Where the decision has to wait for the
train's row (a full train, on PostgreSQL), it is taken again once that row is held and
both rows carry the new reading (STAMP_SUCCESS: written after the lock's read, so never in
the same statement as the payment's move, in which a row may not be written twice).

A train read full (or a settlement sent `seats_first`) goes straight to the train's row
lock (LOCK_TRAIN, which also reads the seats left) and decides holding it: PostgreSQL
sends the lock alone and everything after it as one statement (store.postgres), so the
hot row is held for the lock, that statement and the COMMIT. The waitlist position is
counted in that statement (a `Count`) and named in the notice.

Paying in parts: the success of an attempt bound to a part takes the part's own success
lock (`part_success_lock`: one success per part) instead of the booking's. The first
part's success does what a full payment's does and fixes the plan; a later part's marks
the part paid, or, when the part is no longer due (its booking was cancelled), asks for
the payment to be refunded in full.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tortoise.models import Model

from railserve.models import Booking, BookingStatus, Train
from railserve.payment.models import Actor, PartStatus, Payment, PaymentStatus
from railserve.payment.steps import move, move_booking, now_utc, tell
from railserve.seats import confirmation_notice, waitlist_notice
from railserve.store import Count, Insert, Read, Step, Write

PENDING = PaymentStatus.PENDING
PAYABLE = tuple(status.value for status in BookingStatus.PAYABLE)
TAKE_SEATS = (
    'UPDATE "trains" SET "seats_left"="seats_left"-? '
    'WHERE "id"=? AND "seats_left">=? AND "cancelled_at" IS NULL'
)
# The usual case, with the train's row (which every settlement of the train waits for)
# locked last, just before COMMIT: the booking is confirmed if the seats look free, and
# the seats are taken after the notice; if another settlement took them in between
# (PostgreSQL), the whole step is rolled back and settled again, seats first.
CONFIRM_IF_SEATS = (
    'UPDATE "bookings" SET "status"=?,"paid_at"=? WHERE "id"=? AND "status" IN (?,?) '
    'AND EXISTS (SELECT 1 FROM "trains" WHERE "id"=? AND "seats_left">=? '
    'AND "cancelled_at" IS NULL)'
)
# The waitlist's decision is taken holding the train's row (SQLite's BEGIN IMMEDIATE
# already holds the whole database): seats released meanwhile are seen, and a release
# after us sees this booking on the waitlist. Its answer is the row as it is once held.
LOCK_TRAIN = {
    "sqlite": 'SELECT "cancelled_at","seats_left" FROM "trains" WHERE "id"=?',
    "postgres": 'SELECT "cancelled_at","seats_left" FROM "trains" WHERE "id"=? FOR UPDATE',
}
# The success's instant, read again holding the train's row (see the module's docstring).
STAMP_SUCCESS = 'UPDATE "payments" SET "completed_at"=? WHERE "id"=? AND "status"=?'
PART_OF = 'SELECT "seq","of" FROM "payment_parts" WHERE "id"=?'
PART_PAID = (
    'UPDATE "payment_parts" SET "status"=?,"paid_at"=?,"updated_at"=? WHERE "id"=? AND "status"=?'
)
PLAN_FIXED = 'UPDATE "bookings" SET "plan_fixed_at"=? WHERE "id"=? AND "plan_fixed_at" IS NULL'
# Its place on the waitlist: one more than the waitlisted bookings paid before it.
WAITLIST_POSITION = (
    'SELECT COUNT(*)+1 FROM "bookings" WHERE "train_id"=? AND "status"=? '
    'AND ("paid_at"<? OR ("paid_at"=? AND "id"<?))'
)


class SeatsGone(Exception):
    """The seats seen free were taken before this settlement could take them: nothing was
    written; settle again with `seats_first`."""


@dataclass(frozen=True)
class Verdict:
    succeeded: bool
    reason: str | None = None
    retryable: bool | None = None
    actor: Actor = Actor.GATEWAY
    detail: str = ""


@dataclass(frozen=True)
class Outcome:
    applied: bool
    status: PaymentStatus | None = None
    changes: dict | None = None
    booking_status: BookingStatus | None = None
    paid_at: datetime | None = None
    needs_refund: bool = False


def settle(
    payment: Payment,
    verdict: Verdict,
    record: Model | None = None,
    receipt: Model | None = None,
    *,
    seats_first: bool = False,
) -> Step[Outcome]:
    """`payment` as read with its booking, train and user. `record` is written whatever
    happens (a webhook's event id); `receipt` only when the verdict applies. SeatsGone:
    see CONFIRM_IF_SEATS."""
    if record is not None:
        yield Insert(record)
    if payment.status != PENDING:
        return Outcome(False)
    now = now_utc()  # the one reading of the step (taken again under the train's row)
    booking = payment.booking
    if verdict.succeeded:
        detail = verdict.detail or "payment captured"
        changes = {"pending_lock": None, "success_lock": booking.id, "completed_at": now}
        if payment.part_id is not None:  # one success per part, not per booking
            changes = {**changes, "success_lock": None, "part_success_lock": payment.part_id}
    else:
        detail = verdict.detail or (verdict.reason or "")
        changes = {
            "pending_lock": None,
            "failure_reason": verdict.reason or "Payment failed",
            "retryable": verdict.retryable,
            "completed_at": now,
        }
    event = "succeed" if verdict.succeeded else "fail"
    target = yield from move(payment.id, PENDING, event, verdict.actor, detail, **changes)
    if target is None:
        return Outcome(False)  # another worker settled it first
    place: tuple[BookingStatus, datetime] | None = None
    seated = True
    email = payment.user.email
    if verdict.succeeded and payment.part_id is not None:
        ((seq, _of),) = yield Read(PART_OF, [payment.part_id])
        if seq == 1:
            place = yield from seat(booking, booking.train, email, now, seats_first)
            seated = place is not None
            if seated:
                yield Write(PLAN_FIXED, [now, booking.id])
        paid = (PartStatus.PAID.value, now, now, payment.part_id, PartStatus.DUE.value)
        if seated and not (yield Write(PART_PAID, list(paid))):
            seated = False  # the booking was cancelled meanwhile: refunded in full
    elif verdict.succeeded:
        place = yield from seat(booking, booking.train, email, now, seats_first)
        seated = place is not None
    if place is not None and place[1] != now:  # decided holding the train's row
        yield Write(STAMP_SUCCESS, [place[1], payment.id, target.value], expect=1)
        changes = {**changes, "completed_at": place[1]}
    if receipt is not None:
        yield Insert(receipt)
    return Outcome(
        True,
        target,
        changes,
        booking_status=place[0] if place else None,
        paid_at=place[1] if place else None,
        needs_refund=verdict.succeeded and not seated,
    )


def seat(
    booking: Booking, train: Train, email: str, now: datetime, seats_first: bool = False
) -> Step[tuple[BookingStatus, datetime] | None]:
    """A paid booking confirmed if all its passengers fit, else waitlisted, with the
    instant it was paid: `now`, or a reading taken holding the train's row when the
    decision had to wait for it. None when it cannot take the payment (the caller refunds)."""
    count = booking.passenger_count
    confirmed = BookingStatus.CONFIRMED
    if not seats_first and train.seats_left >= count:  # read full: no use trying
        looks_free = [confirmed.value, now, booking.id, *PAYABLE, train.id, count]
        if (yield Write(CONFIRM_IF_SEATS, looks_free)):
            words = confirmation_notice(booking, train)
            yield from tell(booking.user_id, booking.id, "confirmation", words, email)
            yield Write(TAKE_SEATS, [count, train.id, count], expect=1, otherwise=SeatsGone())
            return confirmed, now
    # Full, cancelled, or the booking moved: decided holding the train's row.
    ((cancelled_at, seats_left),) = yield Read(LOCK_TRAIN, [train.id])
    # Settlements that wait for the row pass here one at a time, so this reading orders
    # them (the waitlist's order, told as its positions).
    paid_at = now_utc()
    if cancelled_at is not None:
        # The railway cancelled the train: the booking closes here, never confirmed.
        yield move_booking(booking.id, PAYABLE, BookingStatus.CANCELLED.value)
        return None
    if seats_left >= count:
        if not (yield move_booking(booking.id, PAYABLE, confirmed.value, paid_at=paid_at)):
            return None  # moved meanwhile: refunded
        yield Write(TAKE_SEATS, [count, train.id, count], expect=1)  # held: they are free
        words = confirmation_notice(booking, train)
        yield from tell(booking.user_id, booking.id, "confirmation", words, email)
        return confirmed, paid_at
    if booking.status == BookingStatus.EXPIRED:
        return None  # expired and full: refunded, as if it had been read that way
    waiting = BookingStatus.WAITLISTED
    pending = (BookingStatus.PENDING_PAYMENT.value,)
    if not (yield move_booking(booking.id, pending, waiting.value, paid_at=paid_at)):
        return None  # expired since it was read: refunded instead
    ((position,),) = yield Count(
        WAITLIST_POSITION, [train.id, waiting.value, paid_at, paid_at, booking.id]
    )
    words = waitlist_notice(booking, train, position)
    yield from tell(booking.user_id, booking.id, "waitlist", words, email)
    return waiting, paid_at
