"""Cancelling: a pending attempt stopped (by its passenger, an operator, or the payment
timeout), and a booking cancelled before it was paid, with its pending attempts."""

from __future__ import annotations

from datetime import datetime

from railserve.models import Booking, BookingStatus
from railserve.payment.models import Actor, PaymentStatus
from railserve.payment.steps import move, move_booking, tell
from railserve.store import Read, Step

PENDING_OF_BOOKING = 'SELECT "id" FROM "payments" WHERE "booking_id"=? AND "status"=?'
EMAIL = 'SELECT "email" FROM "users" WHERE "id"=?'


class BookingMoved(Exception):
    """The booking left `pending_payment` meanwhile (paid, most likely): nothing written."""


def cancel_attempt(
    payment_id: int, reason: str, actor: Actor, *, retryable: bool, now: datetime
) -> Step[bool]:
    """pending → cancelled, freeing the booking for another attempt; False if it moved."""
    target = yield from move(
        payment_id,
        PaymentStatus.PENDING,
        "cancel",
        actor,
        reason,
        pending_lock=None,
        failure_reason=reason,
        retryable=retryable,
        completed_at=now,
    )
    return target is not None


def cancel_unpaid(
    booking: Booking, actor: Actor, why: str | None, now: datetime
) -> Step[list[int]]:
    """Cancel an unpaid booking and its pending attempts, free of charge: the ids of the
    attempts it cancelled. BookingMoved when it is no longer unpaid."""
    pending = yield Read(PENDING_OF_BOOKING, [booking.id, PaymentStatus.PENDING.value])
    cancelled_attempts = []
    for (payment_id,) in pending:
        if (
            yield from cancel_attempt(
                payment_id, why or "Booking cancelled", actor, retryable=False, now=now
            )
        ):
            cancelled_attempts.append(payment_id)
    unpaid = (BookingStatus.PENDING_PAYMENT.value,)
    cancelled = move_booking(booking.id, unpaid, BookingStatus.CANCELLED.value)
    if not (yield cancelled):
        raise BookingMoved
    ((email,),) = yield Read(EMAIL, [booking.user_id])
    tail = f" {why}" if why else ""
    words = (
        f"Booking {booking.pnr} cancelled before payment.{tail}",
        f"Booking {booking.pnr} cancelled",
        f"Your unpaid booking {booking.pnr} was cancelled. Nothing was charged.{tail}",
    )
    yield from tell(booking.user_id, booking.id, "cancellation", words, email)
    return cancelled_attempts
