"""Refund opening: passengers cancelled and a refund recorded `pending`, with every effect.

In order: the payment's `refunded_amount` raised (refused past the amount paid), the
refund's row, the payment's move (`refund` or `refund_part`) with its audit event; then,
for a booking the payment holds, its compare-and-set (status, head count and cancelled
positions as read under its row lock), the parts still due cancelled when it ends, its
seats released, and the waitlist promoted; or, for a payment its booking could not take,
the booking ended; last, the owner's notice.

The promotion: the train's waitlisted bookings in the order they were paid, each that
fits confirmed by a conditional update of the seats and its compare-and-set, with its
notice; one that does not fit is skipped in place (a smaller one behind it may fit), and
it stops when no seat is left. Not on a train the railway cancelled, nor on one that has
left: no one boards it any more.

Run inside the caller's transaction (`store.within`), which holds the payment's, the
train's and the booking's rows (db.LOCK_ORDER): refunds/opening.py. The caller tells the
refund's and the payment's moves (`running`) and updates what it holds in memory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from railserve.bounds import clip
from railserve.display import format_money
from railserve.errors import Conflict
from railserve.models import Booking, BookingStatus, Train, closed_reason
from railserve.payment.models import Actor, PartStatus, Payment, PaymentStatus, Refund, RefundStatus
from railserve.payment.refunds import HOLDING, REFUNDABLE, expected_time, new_refund_id
from railserve.payment.steps import move, move_booking, now_utc, tell
from railserve.payment.steps.cancel import EMAIL
from railserve.seats import promotion_notice
from railserve.store import Insert, Read, Step, Write

# The database refuses a refund past the payment, whatever else commits meanwhile.
RAISE_REFUNDED = (
    'UPDATE "payments" SET "refunded_amount"="refunded_amount"+? '
    'WHERE "id"=? AND "refunded_amount"<=?'
)
# Compare-and-set on the status and head count read under the booking's row lock.
PASSENGERS_CANCELLED = (
    'UPDATE "bookings" SET "status"=?,"passenger_count"=?,"cancelled_positions"=? '
    'WHERE "id"=? AND "status"=? AND "passenger_count"=?'
)
PARTS_CANCELLED = 'UPDATE "payment_parts" SET "status"=? WHERE "booking_id"=? AND "status"=?'
RELEASE_SEATS = 'UPDATE "trains" SET "seats_left"="seats_left"+? WHERE "id"=?'
TAKE_SEATS = 'UPDATE "trains" SET "seats_left"="seats_left"-? WHERE "id"=? AND "seats_left">=?'
SEATS_LEFT = 'SELECT "seats_left" FROM "trains" WHERE "id"=?'
WAITING = (
    'SELECT "b"."id","b"."pnr","b"."passenger_count","b"."user_id","u"."email" '
    'FROM "bookings" "b" JOIN "users" "u" ON "u"."id"="b"."user_id" '
    'WHERE "b"."train_id"=? AND "b"."status"=? ORDER BY "b"."paid_at","b"."id"'
)
WAITLISTED = BookingStatus.WAITLISTED.value
CANCELLED = BookingStatus.CANCELLED


@dataclass(frozen=True)
class Opened:
    """The refund written, and what became of its payment and booking (None: unmoved)."""

    refund: Refund
    payment_status: PaymentStatus | None
    booking_status: BookingStatus
    passenger_count: int
    cancelled_positions: list[int]


def open_refund(
    payment: Payment,
    booking: Booking,
    positions: list[int],
    amount: int,
    *,
    charge: int,
    gst: int,
    actor: Actor,
    reason: str,
    operator_id: int | None,
    whole: bool | None,
) -> Step[Opened]:
    """`payment` and `booking` (with its train) as read holding their rows. `whole`
    (None: no passenger left) says the payment is now fully settled."""
    now = now_utc()
    refundable = payment.status in REFUNDABLE
    most = payment.amount - amount
    too_much = Conflict("That would refund more than was paid.")
    yield Write(RAISE_REFUNDED, [amount, payment.id, most], expect=1, otherwise=too_much)
    # Money captured for an attempt already cancelled or failed is returned, but that
    # attempt never held the booking: leave the booking alone.
    holding = refundable and booking.status in HOLDING
    remaining = booking.passenger_count - len(positions) if holding else 0
    if whole is None:
        whole = remaining == 0
    refund = Refund(
        refund_id=new_refund_id(),
        payment_id=payment.id,
        passengers=positions,
        amount=amount,
        charge=charge,
        gst=gst,
        currency=payment.currency,
        reason=clip(reason),
        actor=actor,
        operator_id=operator_id,
        status=RefundStatus.PENDING if amount else RefundStatus.SUCCEEDED,
        settled_at=None if amount else now,
        updated_at=now,
    )
    yield Insert(refund)
    moved = None
    if refundable:
        detail = f"{refund.refund_id}: {format_money(amount, payment.currency)} — {reason}"
        event = "refund" if whole else "refund_part"
        moved = yield from move(payment.id, PaymentStatus(payment.status), event, actor, detail)
        if moved is None:
            raise Conflict("This payment changed meanwhile. Reload and try again.")
    status, count, cancelled = booking.status, booking.passenger_count, booking.cancelled_positions
    if holding and (positions or whole):
        status, count, cancelled = yield from cancel_passengers(booking, positions, whole, now)
    elif refundable and whole and status != CANCELLED:
        # A payment its booking could not take (the hold expired): the booking ends too.
        payable = tuple(s.value for s in BookingStatus.PAYABLE)
        if (yield move_booking(booking.id, payable, CANCELLED.value)):
            status = CANCELLED
    ((email,),) = yield Read(EMAIL, [booking.user_id])
    words = refund_notice(payment, booking, refund, ended=status == CANCELLED)
    yield from tell(booking.user_id, booking.id, "refund", words, email)
    return Opened(refund, moved, status, count, cancelled)


def cancel_passengers(
    booking: Booking, positions: list[int], whole: bool, now: datetime
) -> Step[tuple[BookingStatus, int, list[int]]]:
    """`positions` (all still booked when `whole`) cancelled: the booking's new status,
    head count and cancelled positions."""
    if whole:
        gone = booking.cancelled_positions
        positions = [p for p in range(1, len(booking.passengers) + 1) if p not in gone]
    remaining = 0 if whole else booking.passenger_count - len(positions)
    cancelled = sorted({*booking.cancelled_positions, *positions})
    target = CANCELLED if remaining == 0 else booking.status
    was = [booking.id, booking.status.value, booking.passenger_count]
    changed = Conflict("This booking changed meanwhile. Reload and try again.")
    written = [target.value, remaining, json.dumps(cancelled, separators=(",", ":"))]
    yield Write(PASSENGERS_CANCELLED, written + was, expect=1, otherwise=changed)
    if target == CANCELLED and booking.plan != "full":
        yield parts_cancelled(booking.id)  # paid in parts (issue 20): nothing more is owed
    freed = booking.passenger_count - remaining
    if booking.status == BookingStatus.CONFIRMED and freed:
        yield Write(RELEASE_SEATS, [freed, booking.train_id])
    # Seats freed, or a smaller waitlisted booking that may fit now.
    if closed_reason(booking.train, now) is None:
        yield from promote(booking.train)
    return target, remaining, cancelled


def parts_cancelled(booking_id: int) -> Write:
    """Parts still due when their booking is cancelled otherwise than for non-payment."""
    values = [PartStatus.CANCELLED.value, booking_id, PartStatus.DUE.value]
    return Write(PARTS_CANCELLED, values)


def cancel_parts_due(booking_id: int) -> Step[int]:
    """`parts_cancelled` as a step of its own: how many parts it cancelled."""
    return (yield parts_cancelled(booking_id))


def promote(train: Train) -> Step[list[int]]:
    """Confirm the oldest waitlisted bookings that now fit; skip, in place, those that do
    not. The ids of those confirmed."""
    ((seats_left,),) = yield Read(SEATS_LEFT, [train.id])
    waiting = yield Read(WAITING, [train.id, WAITLISTED])
    promoted: list[int] = []
    for booking_id, pnr, count, user_id, email in waiting:
        if count > seats_left:
            continue
        if not (yield Write(TAKE_SEATS, [count, train.id, count])):
            ((seats_left,),) = yield Read(SEATS_LEFT, [train.id])
            continue
        confirmed = BookingStatus.CONFIRMED.value
        if not (yield move_booking(booking_id, (WAITLISTED,), confirmed)):
            yield Write(RELEASE_SEATS, [count, train.id])
            continue
        seats_left -= count
        promoted.append(booking_id)
        words = promotion_notice(pnr, train)
        yield from tell(user_id, booking_id, "promotion", words, email)
        if seats_left <= 0:
            break
    return promoted


def refund_notice(
    payment: Payment, booking: Booking, refund: Refund, *, ended: bool
) -> tuple[str, str, str]:
    """The words of a refund opened: in-app message, mail subject and mail body."""
    money = format_money(refund.amount, refund.currency)
    who = ", ".join(booking.passengers[p - 1] for p in refund.passengers) or "your booking"
    deductions = ""
    if refund.charge or refund.gst:
        deductions = (
            f" after a cancellation charge of {format_money(refund.charge, refund.currency)}"
            f" and GST of {format_money(refund.gst, refund.currency)}"
        )
    state = "cancelled" if ended else "updated"
    message = f"Booking {booking.pnr} {state}: refund of {money} for {who} ({refund.refund_id})."
    if refund.actor == Actor.SYSTEM:  # the system's own reasons are written for passengers
        message = refund.reason
    return (
        message,
        f"Refund of {money} for booking {booking.pnr}",
        (
            f"Booking {booking.pnr}: {who} cancelled. We are refunding {money}{deductions} to "
            f"your {payment.instrument} (refund {refund.refund_id}); expect it within "
            f"{expected_time(payment.method)}. Reason: {refund.reason}"
        ),
    )
