"""Opening a refund: a passenger's quote and cancellation, and the unit every way of
cancelling shares — passengers cancelled, seats released, the waitlist promoted, the
payment moved and the refund recorded `pending`, in the caller's transaction."""

from __future__ import annotations

from tortoise.expressions import F

from railserve import db, running
from railserve.bounds import clip
from railserve.config import Settings
from railserve.display import format_money
from railserve.errors import Conflict, Invalid
from railserve.models import Booking, BookingStatus, Train, closed_reason
from railserve.notify import notify
from railserve.payment import cancelling, service
from railserve.payment.models import Actor, Payment, Refund, RefundStatus
from railserve.payment.providers import Gateway
from railserve.payment.refunds import (
    HOLDING,
    REFUNDABLE,
    expected_time,
    new_refund_id,
    rules_in_force,
    ticket_of,
    within_payments,
)
from railserve.payment.refunds.handover import hand_over
from railserve.payment.rules import Quote, chosen_positions, quote
from railserve.seats import move_booking, promote_waitlist, release_seats


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
    """Inside a transaction: cancel `positions`, move the payment, record the refund.

    `whole` (default: no passenger left) says the payment is now fully settled.
    """
    now = service.now_utc()
    refundable = payment.status in REFUNDABLE
    # The database refuses a refund past the payment, whatever else commits meanwhile.
    if not await Payment.filter(id=payment.id, refunded_amount__lte=payment.amount - amount).update(
        refunded_amount=F("refunded_amount") + amount
    ):
        raise Conflict("That would refund more than was paid.")
    # Money captured for an attempt already cancelled or failed is returned, but that
    # attempt never held the booking: leave the booking alone.
    holding = refundable and booking.status in HOLDING
    remaining = booking.passenger_count - len(positions) if holding else 0
    if whole is None:
        whole = remaining == 0
    refund = await Refund.create(
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
    running.refund_moved(refund, None, actor)
    if refundable:
        detail = f"{refund.refund_id}: {format_money(amount, payment.currency)} — {reason}"
        if not await service.transition(
            payment, "refund" if whole else "refund_part", actor, detail
        ):
            raise Conflict("This payment changed meanwhile. Reload and try again.")
    if holding and (positions or whole):
        await _cancel_passengers(booking, positions, remaining, whole)
    elif refundable and whole and booking.status != BookingStatus.CANCELLED:
        # A payment its booking could not take (the hold expired): the booking ends too.
        await move_booking(booking, BookingStatus.PAYABLE, BookingStatus.CANCELLED)
    await _tell_owner_refund_opened(payment, booking, refund)
    return refund


async def _cancel_passengers(
    booking: Booking, positions: list[int], remaining: int, whole: bool
) -> None:
    was_confirmed = booking.status == BookingStatus.CONFIRMED
    if whole:
        positions = [
            p for p in range(1, len(booking.passengers) + 1) if p not in booking.cancelled_positions
        ]
        remaining = 0
    cancelled = sorted({*booking.cancelled_positions, *positions})
    target = BookingStatus.CANCELLED if remaining == 0 else booking.status
    # Compare-and-set on the status and head count read under the row lock.
    if not await Booking.filter(
        id=booking.id, status=booking.status, passenger_count=booking.passenger_count
    ).update(status=target, passenger_count=remaining, cancelled_positions=cancelled):
        raise Conflict("This booking changed meanwhile. Reload and try again.")
    if target == BookingStatus.CANCELLED and booking.plan != "full":
        await cancel_parts_due(booking.id)  # paid in parts (issue 20): nothing more is owed
    freed = booking.passenger_count - remaining
    booking.status, booking.passenger_count, booking.cancelled_positions = (
        target,
        remaining,
        cancelled,
    )
    if was_confirmed and freed:
        await release_seats(booking.train_id, freed)
    # Seats freed, or a smaller waitlisted booking that may fit now (not on a train the
    # railway cancelled, nor on one that has left: no one boards it any more).
    if closed_reason(booking.train, service.now_utc()) is None:
        await promote_waitlist(booking.train_id)


async def _tell_owner_refund_opened(payment: Payment, booking: Booking, refund: Refund) -> None:
    money = format_money(refund.amount, refund.currency)
    who = ", ".join(booking.passengers[p - 1] for p in refund.passengers) or "your booking"
    deductions = ""
    if refund.charge or refund.gst:
        deductions = (
            f" after a cancellation charge of {format_money(refund.charge, refund.currency)}"
            f" and GST of {format_money(refund.gst, refund.currency)}"
        )
    state = "cancelled" if booking.status == BookingStatus.CANCELLED else "updated"
    message = f"Booking {booking.pnr} {state}: refund of {money} for {who} ({refund.refund_id})."
    if refund.actor == Actor.SYSTEM:  # the system's own reasons are written for passengers
        message = refund.reason
    await notify(
        booking.user_id,
        booking.id,
        "refund",
        message,
        subject=f"Refund of {money} for booking {booking.pnr}",
        body=(
            f"Booking {booking.pnr}: {who} cancelled. We are refunding {money}{deductions} to "
            f"your {payment.instrument} (refund {refund.refund_id}); expect it within "
            f"{expected_time(payment.method)}. Reason: {refund.reason}"
        ),
    )


async def cancel_parts_due(booking_id: int) -> None:
    """Parts still due when their booking is cancelled otherwise than for non-payment."""
    from railserve.payment.models import PartStatus, PaymentPart

    await PaymentPart.filter(booking_id=booking_id, status=PartStatus.DUE).update(
        status=PartStatus.CANCELLED
    )
