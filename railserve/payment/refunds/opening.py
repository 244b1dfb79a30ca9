"""Opening a refund: a passenger's quote and cancellation, and the unit every way of
cancelling shares — passengers cancelled, seats released, the waitlist promoted, the
payment moved and the refund recorded `pending`, in the caller's transaction (its writes
are a step: railserve/payment/steps/open_refund.py)."""

from __future__ import annotations

from railserve import db, running, store
from railserve.config import Settings
from railserve.display import format_money
from railserve.errors import Conflict, Invalid
from railserve.models import Booking, BookingStatus, Train
from railserve.payment import cancelling, service
from railserve.payment.models import Actor, Payment, Refund
from railserve.payment.providers import Gateway
from railserve.payment.refunds import (
    HOLDING,
    REFUNDABLE,
    rules_in_force,
    ticket_of,
    within_payments,
)
from railserve.payment.refunds.handover import hand_over
from railserve.payment.rules import Quote, chosen_positions, quote
from railserve.payment.steps import open_refund as step


def _cancellable_or_raise(booking: Booking) -> None:
    if booking.status not in BookingStatus.OPEN:
        raise Conflict(f"This booking is already {booking.status.value.replace('_', ' ')}.")


async def quote_for(
    settings: Settings, user_id: int, booking_id: int, positions: list[int] | None
) -> tuple[Booking, Quote]:
    """What cancelling `positions` (none: everyone still booked) would refund now."""
    booking = await service.owned_booking(user_id, booking_id)
    _cancellable_or_raise(booking)
    ticket = ticket_of(booking, paid=booking.status in HOLDING)
    chosen = chosen_positions(ticket, positions)
    offer = quote(ticket, chosen, rules_in_force(settings), service.now_utc())
    if ticket.paid and (
        payments := await Payment.filter(booking_id=booking.id, status__in=list(REFUNDABLE)).only(
            "id", "amount", "refunded_amount", "currency"
        )
    ):
        offer = within_payments(offer, payments)
    return booking, offer


async def cancel(
    gateway: Gateway,
    settings: Settings,
    user_id: int,
    booking_id: int,
    positions: list[int] | None,
    expected_refund: int | None,
) -> str:
    """Cancel passengers (none given: all still booked); returns a message for the user."""
    booking = await service.owned_booking(user_id, booking_id)
    _cancellable_or_raise(booking)
    if booking.status == BookingStatus.PENDING_PAYMENT:
        active = chosen_positions(ticket_of(booking, paid=False), None)
        if positions and sorted(set(positions)) != active:
            raise Invalid(
                "An unpaid booking is cancelled as a whole (free of charge).",
                errors={"passenger": "Cancel every passenger of an unpaid booking."},
            )
        return await cancelling.cancel_unpaid(booking)
    if booking.plan != "full":  # paid in parts (issue 20): payment/dues.py
        from railserve.payment.dues import cancel_on_plan  # dues imports this module

        return await cancel_on_plan(gateway, settings, booking, positions, expected_refund)
    now = service.now_utc()
    rules = rules_in_force(settings)

    async def work() -> Refund:
        payment = await locked_payment(booking.id)
        locked = await lock_booking(booking.id, booking.train_id)
        if locked.status not in HOLDING:
            raise Conflict(f"This booking is already {locked.status.value.replace('_', ' ')}.")
        ticket = ticket_of(locked, paid=True)
        offer = quote(ticket, chosen_positions(ticket, positions), rules, now)
        offer = within_payments(offer, [payment])
        if not offer.cancellable:
            raise Conflict(offer.reason or "This booking can no longer be cancelled online.")
        if expected_refund is not None and expected_refund != offer.refund:
            raise Conflict(
                f"The refund is now {format_money(offer.refund, offer.currency)}, not "
                f"{format_money(expected_refund, offer.currency)} as quoted (a cancellation "
                "window was crossed). Nothing was changed: review the new quote."
            )
        return await open_quoted(payment, locked, offer, actor=Actor.USER, reason=offer.rule)

    refund = await db.atomic(work)
    await hand_over(gateway, settings, refund.id)
    names = ", ".join(booking.passengers[p - 1] for p in refund.passengers)
    return (
        f"Cancelled {names} on booking {booking.pnr}. Refund "
        f"{format_money(refund.amount, refund.currency)} ({refund.refund_id})."
    )


async def lock_booking(booking_id: int, train_id: int | None = None) -> Booking:
    """The booking, locked after its train (db.LOCK_ORDER: the caller already holds the
    payment), with its train. A booking's train never changes: `train_id` may be read
    before the transaction."""
    if train_id is None:
        train_id = await Booking.get(id=booking_id).values_list("train_id", flat=True)
    await Train.filter(id=train_id).select_for_update().only("id").get()
    booking = await Booking.filter(id=booking_id).select_for_update().get()
    await booking.fetch_related("train")
    return booking


async def locked_payment(booking_id: int) -> Payment:
    # Payments first, in every transaction (db.LOCK_ORDER): no deadlocks.
    payment = (
        await Payment.filter(booking_id=booking_id, status__in=list(REFUNDABLE))
        .select_for_update()
        .first()
    )
    if payment is None:
        raise Conflict("This booking has no payment to refund.")
    return payment


async def open_quoted(
    payment: Payment, booking: Booking, offer: Quote, *, actor: Actor, reason: str
) -> Refund:
    """`open_refund` for the passengers of a quote, with its charges."""
    return await open_refund(
        payment,
        booking,
        offer.positions,
        offer.refund,
        charge=offer.charge,
        gst=offer.gst,
        actor=actor,
        reason=reason,
    )


async def open_refund(
    payment: Payment,
    booking: Booking,
    positions: list[int],
    amount: int,
    *,
    charge: int = 0,
    gst: int = 0,
    actor: Actor,
    reason: str,
    operator_id: int | None = None,
    whole: bool | None = None,
) -> Refund:
    """Inside a transaction: cancel `positions`, move the payment, record the refund
    (steps/open_refund.py, which says what it writes).

    `whole` (default: no passenger left) says the payment is now fully settled.
    """
    source = payment.status
    opened = await store.within(
        step.open_refund(
            payment,
            booking,
            positions,
            amount,
            charge=charge,
            gst=gst,
            actor=actor,
            reason=reason,
            operator_id=operator_id,
            whole=whole,
        )
    )
    refund = opened.refund
    running.refund_moved(refund, None, actor)
    payment.refunded_amount += amount
    if opened.payment_status is not None:
        payment.status = opened.payment_status
        running.payment_moved(payment, source, opened.payment_status, actor)
    booking.status = opened.booking_status
    booking.passenger_count = opened.passenger_count
    booking.cancelled_positions = opened.cancelled_positions
    return refund


async def cancel_parts_due(booking_id: int) -> None:
    """Parts still due when their booking is cancelled otherwise than for non-payment,
    inside the caller's transaction."""
    await store.within(step.cancel_parts_due(booking_id))
