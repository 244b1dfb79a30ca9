"""Paying in parts after the first part: the sweep's reminders before a part falls due, the
cancellation of a booking whose part fell due unpaid ("for non-payment"), and a
passenger's cancellation of a booking on a plan (whole only while a part is due).

Both are compare-and-sets, so two sweeps (or two workers) at once do each thing once: a
reminder is claimed by raising the part's `reminders_sent` count from what was read; a
missed part is claimed by moving it from `due` to `missed` with the booking locked.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from railserve import db
from railserve.config import Settings
from railserve.display import format_due, format_money
from railserve.errors import Conflict, Invalid
from railserve.models import Booking, BookingStatus
from railserve.notify import notify
from railserve.payment import refunds, service
from railserve.payment.models import Actor, PartStatus, Payment, PaymentPart, PaymentStatus
from railserve.payment.parts import balance_due
from railserve.payment.plans import load_plans
from railserve.payment.providers import Gateway
from railserve.payment.refunds import opening, spread
from railserve.payment.rules import chosen_positions, quote

log = logging.getLogger(__name__)

HOLDING = (BookingStatus.CONFIRMED, BookingStatus.WAITLISTED)
NON_PAYMENT = "Cancelled for non-payment"
BATCH = 500


def reminder_times(due_at: datetime, hours: tuple[float, ...]) -> list[datetime]:
    """When a part's reminders fall, earliest first."""
    return sorted(due_at - timedelta(hours=h) for h in hours)


async def send_reminders(settings: Settings, now: datetime) -> list[str]:
    """Remind the owners of parts falling due; the PNRs reminded."""
    plans = load_plans(settings.payment_plans)
    longest = max((h for p in plans.values() for h in p.remind_hours_before_due), default=0)
    if not longest:
        return []
    parts = (
        await PaymentPart.filter(
            status=PartStatus.DUE,
            due_at__gt=now,
            due_at__lte=now + timedelta(hours=longest),
            booking__status__in=list(HOLDING),
            booking__plan_fixed_at__isnull=False,
        )
        .select_related("booking")
        .limit(BATCH)
    )
    reminded = []
    for part in parts:
        plan = plans.get(part.booking.plan)
        if plan is None:  # a plan the railway no longer offers keeps its parts, unreminded
            continue
        times = reminder_times(part.due_at, plan.remind_hours_before_due)
        came = sum(1 for at in times if at <= now)
        if came <= part.reminders_sent:
            continue
        # Only the latest reminder whose time came, and only if it came after the plan
        # was fixed (those passed over are claimed with it, never sent late).
        send = times[came - 1] >= part.booking.plan_fixed_at
        if await _claim_reminder(part, came, send) and send:
            reminded.append(part.booking.pnr)
    return reminded


async def _claim_reminder(part: PaymentPart, came: int, send: bool) -> bool:
    booking: Booking = part.booking

    async def work() -> bool:
        claimed = await PaymentPart.filter(
            id=part.id, status=PartStatus.DUE, reminders_sent=part.reminders_sent
        ).update(reminders_sent=came)
        if claimed and send:
            amount = format_money(part.amount, part.currency)
            due = format_due(part.due_at)
            await notify(
                booking.user_id,
                booking.id,
                "reminder",
                f"Part {part.seq} of {part.of} of booking {booking.pnr}, {amount}, is due by {due}.",
                subject=f"Booking {booking.pnr}: {amount} due by {due}",
                body=(
                    f"Part {part.seq} of {part.of} of your booking {booking.pnr}, {amount}, "
                    f"is due by {due}. Pay it from your trips page; unpaid, the booking is "
                    "cancelled for non-payment and the cancellation charges are kept."
                ),
            )
        return bool(claimed)

    return await db.atomic(work)


async def cancel_missed(settings: Settings, gateway: Gateway, now: datetime) -> list[str]:
    """Cancel the bookings whose part fell due unpaid; the PNRs cancelled."""
    missed = (
        await PaymentPart.filter(
            status=PartStatus.DUE, due_at__lte=now, booking__status__in=list(HOLDING)
        )
        .order_by("due_at")
        .limit(BATCH)
    )
    cancelled = []
    for part in missed:
        if await cancel_for_non_payment(settings, gateway, part):
            cancelled.append(part.booking_id)
    if not cancelled:
        return []
    return list(await Booking.filter(id__in=cancelled).values_list("pnr", flat=True))


async def cancel_for_non_payment(settings: Settings, gateway: Gateway, part: PaymentPart) -> bool:
    """The booking cancelled: the charges of every passenger still booked, as at the
    part's due time, kept out of what was paid; the rest refunded, newest payment first."""
    rules = refunds.rules_in_force(settings)
    told: dict = {}

    async def decide(booking: Booking, payments: list[Payment]) -> spread.Decision | None:
        if booking.status not in HOLDING:
            return None
        if await Payment.exists(booking_id=booking.id, status=PaymentStatus.PENDING):
            return None  # an attempt for it may still succeed: the next sweep decides
        if not await PaymentPart.filter(id=part.id, status=PartStatus.DUE).update(
            status=PartStatus.MISSED
        ):
            return None
        await PaymentPart.filter(booking_id=booking.id, status=PartStatus.DUE).update(
            status=PartStatus.MISSED
        )
        ticket = refunds.ticket_of(booking, paid=True)
        offer = quote(ticket, chosen_positions(ticket, None), rules, part.due_at)
        paid = sum(p.amount - p.refunded_amount for p in payments)
        charges = offer.charge + offer.gst if offer.cancellable else paid
        kept = min(charges, paid)
        charge = min(offer.charge, kept) if offer.cancellable else kept
        told.update(booking=booking, paid=paid, kept=kept)
        return paid - kept, charge, kept - charge, []

    made = await spread.cancel_spread(
        gateway, settings, part.booking_id, decide, actor=Actor.SYSTEM, reason=NON_PAYMENT
    )
    if made is None:
        return False
    booking = told["booking"]
    refunded = format_money(told["paid"] - told["kept"], booking.currency)
    kept = format_money(told["kept"], booking.currency)
    await notify(
        booking.user_id,
        booking.id,
        "non_payment",
        f"Booking {booking.pnr} was cancelled for non-payment: {refunded} refunded.",
        subject=f"Booking {booking.pnr} cancelled for non-payment",
        body=(
            f"Part {part.seq} of {part.of} of your booking {booking.pnr} was not paid by "
            f"{format_due(part.due_at)}, so the booking was cancelled. The cancellation "
            f"charges, {kept}, were kept; {refunded} is refunded to you."
        ),
    )
    return True


BALANCE_FIRST = "Pay the balance first, or cancel the whole booking."


async def cancel_on_plan(
    gateway: Gateway,
    settings: Settings,
    booking: Booking,
    positions: list[int] | None,
    expected_refund: int | None,
) -> str:
    """`cancel` for a booking paid in parts: while a part is due, only the whole booking,
    refunding what was paid less the charges."""
    now = service.now_utc()
    rules = refunds.rules_in_force(settings)

    async def decide(locked: Booking, payments: list[Payment]) -> spread.Decision:
        if locked.status not in HOLDING:
            raise Conflict(f"This booking is already {locked.status.value.replace('_', ' ')}.")
        ticket = refunds.ticket_of(locked, paid=True)
        chosen = chosen_positions(ticket, positions)
        due = await balance_due(locked.id)
        if due and chosen != chosen_positions(ticket, None):
            raise Invalid(BALANCE_FIRST, errors={"passenger": BALANCE_FIRST})
        offer = quote(ticket, chosen, rules, now)
        if not offer.cancellable:
            raise Conflict(offer.reason or "This booking can no longer be cancelled online.")
        paid = sum(p.amount - p.refunded_amount for p in payments)
        refund = max(paid - offer.charge - offer.gst, 0) if due else min(offer.refund, paid)
        if expected_refund is not None and expected_refund != refund:
            raise Conflict(
                f"The refund is now {format_money(refund, offer.currency)}, not "
                f"{format_money(expected_refund, offer.currency)} as quoted. Nothing was "
                "changed: review the new quote."
            )
        if due:
            await opening.cancel_parts_due(locked.id)
        return refund, offer.charge, offer.gst, offer.positions

    made = await spread.cancel_spread(
        gateway, settings, booking.id, decide, actor=Actor.USER, reason="Cancelled by you"
    )
    total = sum(refund.amount for refund in made or ())
    return f"Cancelled on booking {booking.pnr}. Refund {format_money(total, booking.currency)}."
