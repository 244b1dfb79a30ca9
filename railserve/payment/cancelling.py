"""Cancelling before the money moves: a pending attempt (the passenger's, the console's,
the sweep's), or an unpaid booking with its attempts, free of charge. The step is
steps/cancel.py; this module reads what it needs, runs it, and tells what it moved."""

from __future__ import annotations

from railserve import running, store
from railserve.errors import Conflict
from railserve.models import Booking, BookingStatus
from railserve.payment.models import Actor, Payment, PaymentStatus
from railserve.payment.service import owned_payment
from railserve.payment.steps import cancel as cancelling
from railserve.payment.steps import now_utc


async def cancel_attempt(user_id: int, transaction_id: str) -> Payment:
    """The passenger stops a pending attempt."""
    payment = await owned_payment(user_id, transaction_id)
    if payment.status != PaymentStatus.PENDING:
        raise Conflict(f"This payment is already {payment.status.value} and cannot be cancelled.")
    cancelled = await cancel_pending(payment.id, "Cancelled by you", actor=Actor.USER)
    if not cancelled:
        payment = await Payment.get(id=payment.id)
        raise Conflict(f"This payment is already {payment.status.value} and cannot be cancelled.")
    return await Payment.get(id=payment.id)


async def cancel_pending(payment_id: int, reason: str, *, actor: Actor) -> bool:
    """pending → cancelled (steps/cancel.py); False when the attempt was no longer pending."""
    now = now_utc()
    cancelled = await store.run(
        lambda: cancelling.cancel_attempt(payment_id, reason, actor, retryable=True, now=now)
    )
    if cancelled:
        await _told_cancelled([payment_id], actor)
    return cancelled


async def _told_cancelled(payment_ids: list[int], actor: Actor) -> None:
    """Log and count attempts a committed step cancelled (running.payment_moved)."""
    for payment in await Payment.filter(id__in=payment_ids):
        running.payment_moved(payment, PaymentStatus.PENDING, PaymentStatus.CANCELLED, actor)


async def cancel_unpaid(
    booking: Booking, *, actor: Actor = Actor.USER, why: str | None = None
) -> str:
    """Cancel a booking before payment, with its pending attempts: free of charge."""
    try:
        now = now_utc()
        cancelled = await store.run(lambda: cancelling.cancel_unpaid(booking, actor, why, now))
    except cancelling.BookingMoved:
        raise Conflict(
            "This booking changed meanwhile (was it just paid?). Reload and try again."
        ) from None
    if cancelled:
        await _told_cancelled(cancelled, actor)
    booking.status = BookingStatus.CANCELLED
    return f"Booking {booking.pnr} cancelled."
