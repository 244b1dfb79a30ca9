"""Starting an attempt: the pending payment, its audit event, and the booking's check.

The booking was read before the transaction: an attempt that succeeded (or a
cancellation) since then must stop this one, or the gateway would be asked to take the
money twice. The payment is inserted first and the booking updated second (payments
before bookings, the lock order of every step). A unique key refusing the payment (the
same idempotency key, or another attempt pending for the booking: `pending_lock`) raises
the ORM's IntegrityError; a booking no longer payable rolls back and answers None.
"""

from __future__ import annotations

from datetime import datetime

from railserve.models import BookingStatus
from railserve.payment.models import Payment, PaymentEvent
from railserve.store import Insert, Rollback, Step, Write

STILL_PAYABLE = 'UPDATE "bookings" SET "updated_at"=? WHERE "id"=? AND "status"=?'


def start(attempt: Payment, started: PaymentEvent, now: datetime) -> Step[Payment | None]:
    payment_id = yield Insert(attempt)
    yield Write(
        STILL_PAYABLE,
        [now, attempt.booking_id, BookingStatus.PENDING_PAYMENT.value],
        expect=1,
        otherwise=Rollback(None),
    )
    started.payment_id = payment_id
    yield Insert(started)
    return attempt
