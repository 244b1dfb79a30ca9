"""Expiry: a booking held but not paid in time (`RAILSERVE_BOOKING_HOLD`) expires, and
its passenger is told. A payment that succeeds later is settled against the expired
booking (steps/settle.py): confirmed if seats remain, refunded otherwise."""

from __future__ import annotations

from railserve.models import Booking, BookingStatus
from railserve.payment.steps import move_booking, tell
from railserve.store import Step


def expire(booking: Booking, train_number: str, email: str) -> Step[bool]:
    """pending_payment → expired, with its notice; False when it moved meanwhile."""
    unpaid = (BookingStatus.PENDING_PAYMENT.value,)
    if not (yield move_booking(booking.id, unpaid, BookingStatus.EXPIRED.value)):
        return False
    words = (
        f"Booking {booking.pnr} expired before it was paid.",
        f"Booking {booking.pnr} expired",
        (
            f"Your booking {booking.pnr} on train {train_number} was held for you but not "
            "paid in time, so it has expired. Nothing was charged."
        ),
    )
    yield from tell(booking.user_id, booking.id, "expiry", words, email)
    return True
