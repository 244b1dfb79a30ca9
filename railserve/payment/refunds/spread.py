"""Refunds the system opens for a whole payment or booking: in full (a late payment, a
cancelled train), a waitlisted booking whose train departed, and a booking's refund
spread over the payments of a plan, newest first."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

from railserve import db
from railserve.config import Settings
from railserve.display import format_money
from railserve.errors import Conflict
from railserve.models import Booking, BookingStatus
from railserve.payment.models import Actor, Payment, PaymentStatus, Refund
from railserve.payment.providers import Gateway
from railserve.payment.refunds import REFUNDABLE, rules_in_force, ticket_of
from railserve.payment.refunds.handover import hand_over
from railserve.payment.refunds.opening import lock_booking, locked_payment, open_quoted, open_refund
from railserve.payment.rules import departure_quote


async def refund_in_full(
    gateway: Gateway, settings: Settings, payment_id: int, *, actor: Actor, reason: str
) -> Refund | None:
    """Everything still refundable, no charges: a late payment, a cancelled train, or
    money captured for an attempt we had already cancelled. None when nothing is left."""

    async def work() -> Refund | None:
        payment = await Payment.filter(id=payment_id).select_for_update().get()
        left = payment.amount - payment.refunded_amount
        if left <= 0 or payment.status == PaymentStatus.REFUNDED:
            return None
        if payment.status not in REFUNDABLE and await Refund.exists(payment_id=payment.id):
            return None  # money captured after a final state: already being returned
        booking = await lock_booking(payment.booking_id)
        return await open_refund(payment, booking, [], left, actor=actor, reason=reason, whole=True)

    refund = await db.atomic(work)
    if refund is not None:
        await hand_over(gateway, settings, refund.id)
    return refund


async def refund_departed(gateway: Gateway, settings: Settings, booking_id: int) -> Refund | None:
    """A booking still waitlisted when its train departed: cancelled, and refunded in full
    less the waitlist clerkage (and GST). None when it is no longer waitlisted."""
    rules = rules_in_force(settings)

    async def work() -> Refund | None:
        try:
            payment = await locked_payment(booking_id)
        except Conflict:
            return None
        locked = await lock_booking(booking_id)
        if locked.status != BookingStatus.WAITLISTED:
            return None
        offer = departure_quote(ticket_of(locked, paid=True), rules)
        money = partial(format_money, currency=offer.currency)
        reason = (
            f"Train {locked.train.number} departed while booking {locked.pnr} was still "
            f"waitlisted: refund of {money(offer.refund)} (clerkage {money(offer.charge)}, "
            f"GST {money(offer.gst)})"
        )
        return await open_quoted(payment, locked, offer, actor=Actor.SYSTEM, reason=reason)

    refund = await db.atomic(work)
    if refund is not None:
        await hand_over(gateway, settings, refund.id)
    return refund


# Paying in parts (issue 20): a booking on a plan has several payments. Its refund is
# spread over them, newest first (the charges are kept out of the oldest, the deposit);
# cancelled as a whole, every payment moves to `refunded`, with a zero refund where
# nothing of it is returned.
Decision = tuple[int, int, int, list[int]]  # (refund in all, charge, gst, positions)


async def cancel_spread(
    gateway: Gateway,
    settings: Settings,
    booking_id: int,
    decide: Callable[[Booking, list[Payment]], Awaitable[Decision | None]],
    *,
    actor: Actor,
    reason: str,
) -> list[Refund] | None:
    """Cancel passengers of a booking (all: `positions` empty), its refund spread over its
    payments newest first.

    `decide` runs in the transaction with the payments, the train and the booking locked
    (in that order, db.LOCK_ORDER, as every other unit takes them): it answers the refund,
    charge, GST and positions, or None to change nothing."""

    async def work() -> list[Refund] | None:
        payments = list(
            await Payment.filter(booking_id=booking_id, status__in=list(REFUNDABLE))
            .order_by("-id")
            .select_for_update()
        )
        booking = await lock_booking(booking_id)
        decided = await decide(booking, payments)
        if decided is None or not payments:
            return None
        left, charge, gst, positions = decided
        whole = not positions or len(positions) >= booking.passenger_count
        made = []
        for index, payment in enumerate(payments):
            take = min(left, payment.amount - payment.refunded_amount)
            if not whole and index and not take:
                break  # a part of the booking: payments nothing is taken from stay as they are
            left -= take
            oldest = index == len(payments) - 1 or (not whole and not left)
            made.append(
                await open_refund(
                    payment,
                    booking,
                    positions if index == 0 else [],
                    take,
                    charge=charge if oldest else 0,
                    gst=gst if oldest else 0,
                    actor=actor,
                    reason=reason,
                    whole=True if whole else None if index == 0 else False,
                )
            )
        return made

    made = await db.atomic(work)
    for refund in made or ():
        if refund.amount:
            await hand_over(gateway, settings, refund.id)
    return made
