"""Cancel passengers, open refunds and settle them: one transaction each.

A cancellation and the refund it owes commit together, `pending`, before the gateway is
asked; the gateway's answer (or its signed webhook) settles the refund later, and the
sweep asks about any refund still pending. A crash between the commit and the gateway
therefore loses no money, and the payment's `refunded_amount` is raised by a conditional
update that the database refuses past the amount paid, whatever runs at the same time.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import string
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from functools import lru_cache, partial

from tortoise.expressions import F

from railserve import db, running
from railserve.config import Settings
from railserve.display import format_money
from railserve.errors import Conflict, Invalid, NotFound
from railserve.models import Booking, BookingStatus, Train, closed_reason
from railserve.notify import notify
from railserve.payment import service
from railserve.payment.machine import RefundMachine
from railserve.payment.models import (
    Actor,
    OperatorAction,
    Payment,
    PaymentEvent,
    PaymentStatus,
    Refund,
    RefundStatus,
)
from railserve.payment.providers import Gateway, RefundRequest
from railserve.payment.rules import (
    Quote,
    Rules,
    Ticket,
    capped,
    chosen_positions,
    departure_quote,
    load_rules,
    quote,
)
from railserve.seats import move_booking, promote_waitlist, release_seats

log = logging.getLogger(__name__)

REFUNDABLE = (PaymentStatus.SUCCESS, PaymentStatus.PARTIALLY_REFUNDED)
HOLDING = (BookingStatus.CONFIRMED, BookingStatus.WAITLISTED)
RFD_ALPHABET = string.ascii_uppercase + string.digits
BATCH = 500
CARD_METHODS = ("credit_card", "debit_card")


def new_refund_id() -> str:
    return "RFD" + "".join(secrets.choice(RFD_ALPHABET) for _ in range(16))


@lru_cache(maxsize=8)
def _rules(path: str) -> Rules:
    return load_rules(path)


def rules_in_force(settings: Settings) -> Rules:
    return _rules(settings.refund_rules)


def expected_time(method: str) -> str:
    """When the money reaches the passenger, by how they paid."""
    return "6–7 business days" if str(method) in CARD_METHODS else "3–4 business days"


def ticket_of(booking: Booking, paid: bool) -> Ticket:
    return Ticket(
        passengers=tuple(booking.passengers),
        cancelled=frozenset(booking.cancelled_positions or ()),
        amount=booking.amount,
        currency=booking.currency,
        travel_class=str(booking.train.travel_class),
        departs_at=booking.train.departs_at,
        paid=paid,
        confirmed=booking.status == BookingStatus.CONFIRMED,
    )


def _cancellable_or_raise(booking: Booking) -> None:
    if booking.status not in (*HOLDING, BookingStatus.PENDING_PAYMENT):
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


def within_payments(offer: Quote, payments: list[Payment]) -> Quote:
    """The quote, capped by what earlier refunds left of the booking's payments (one, or
    each part's when it is paid in parts)."""
    refunded = sum(p.refunded_amount for p in payments)
    left = sum(p.amount for p in payments) - refunded
    return capped(offer, left, format_money(refunded, payments[0].currency))


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
        return await service.cancel_unpaid(booking)
    if booking.plan != "full":  # paid in parts (issue 20): payment/dues.py
        from railserve.payment.dues import cancel_on_plan  # dues imports this module

        return await cancel_on_plan(gateway, settings, booking, positions, expected_refund)
    now = service.now_utc()
    rules = rules_in_force(settings)

    async def work() -> Refund:
        payment = await _locked_payment(booking.id)
        locked = await _lock_booking(booking.id, booking.train_id)
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
        return await _open_quoted(payment, locked, offer, actor=Actor.USER, reason=offer.rule)

    refund = await db.atomic(work)
    await _hand_over(gateway, settings, refund.id)
    names = ", ".join(booking.passengers[p - 1] for p in refund.passengers)
    return (
        f"Cancelled {names} on booking {booking.pnr}. Refund "
        f"{format_money(refund.amount, refund.currency)} ({refund.refund_id})."
    )


async def _lock_booking(booking_id: int, train_id: int | None = None) -> Booking:
    """The booking, locked after its train (db.LOCK_ORDER: the caller already holds the
    payment), with its train. A booking's train never changes: `train_id` may be read
    before the transaction."""
    if train_id is None:
        train_id = await Booking.get(id=booking_id).values_list("train_id", flat=True)
    await Train.filter(id=train_id).select_for_update().only("id").get()
    booking = await Booking.filter(id=booking_id).select_for_update().get()
    await booking.fetch_related("train")
    return booking


async def _locked_payment(booking_id: int) -> Payment:
    # Payments first, in every transaction (db.LOCK_ORDER): no deadlocks.
    payment = (
        await Payment.filter(booking_id=booking_id, status__in=list(REFUNDABLE))
        .select_for_update()
        .first()
    )
    if payment is None:
        raise Conflict("This booking has no payment to refund.")
    return payment


async def _open_quoted(
    payment: Payment, booking: Booking, offer: Quote, *, actor: Actor, reason: str
) -> Refund:
    """`_open_refund` for the passengers of a quote, with its charges."""
    return await _open_refund(
        payment,
        booking,
        offer.positions,
        offer.refund,
        charge=offer.charge,
        gst=offer.gst,
        actor=actor,
        reason=reason,
    )


async def _open_refund(
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
        reason=reason[:300],
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
        await move_booking(
            booking, (BookingStatus.EXPIRED, BookingStatus.PENDING_PAYMENT), BookingStatus.CANCELLED
        )
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


async def _hand_over(gateway: Gateway, settings: Settings, refund_pk: int) -> None:
    """Ask the gateway, shielded: a client hanging up must not cut this step short."""
    try:
        await asyncio.shield(asyncio.ensure_future(ask_gateway(gateway, settings, refund_pk)))
    except Exception:  # the sweep asks again
        log.exception("refund %s not handed to the gateway", refund_pk)


async def ask_gateway(gateway: Gateway, settings: Settings, refund_pk: int) -> None:
    """Claim the next attempt of a pending refund and ask the gateway for it."""
    refund = await Refund.get(id=refund_pk)
    if refund.status != RefundStatus.PENDING:
        return
    attempt = refund.attempts + 1
    if not await Refund.filter(
        id=refund.id, status=RefundStatus.PENDING, attempts=refund.attempts
    ).update(attempts=attempt, updated_at=service.now_utc()):
        return  # another worker is asking
    refund.attempts = attempt
    await _send(gateway, settings, refund)


async def _send(gateway: Gateway, settings: Settings, refund: Refund) -> None:
    payment = await Payment.get(id=refund.payment_id).only("id", "transaction_id")
    request = RefundRequest(
        refund.refund_id, refund.attempts, payment.transaction_id, refund.amount, refund.currency
    )
    try:
        result = await gateway.refund(request)
    except Exception:  # unreachable: the sweep resends this attempt
        log.exception("gateway refund call failed for %s", refund.refund_id)
        return
    if not result.ok:
        await settle_refund(
            settings, refund.refund_id, False, reason=result.reason, detail="refused at once"
        )
        return
    if result.reference:
        await Refund.filter(id=refund.id, status=RefundStatus.PENDING).update(
            gateway_reference=result.reference
        )
    if result.state != "pending":
        await settle_refund(
            settings,
            refund.refund_id,
            result.state == "succeeded",
            reason=result.reason,
            reference=result.reference,
        )


async def settle_refund(
    settings: Settings,
    refund_id: str,
    succeeded: bool,
    *,
    reason: str | None = None,
    reference: str | None = None,
    actor: Actor = Actor.GATEWAY,
    detail: str = "",
    record=None,
) -> bool:
    """Apply the gateway's verdict on a pending refund, atomically; False if nothing moved.

    A refusal leaves the refund pending for the sweep to retry, until the gateway has
    refused it `RAILSERVE_REFUND_ATTEMPTS` times; then it stays failed for an operator.
    """
    now = service.now_utc()

    async def work() -> bool:
        if record is not None:
            await record.save(force_create=True)
        refund = await Refund.get(refund_id=refund_id)
        if refund.status != RefundStatus.PENDING:
            return False
        # The payment's lock before the refund's (db.LOCK_ORDER), then the refund afresh.
        payment = await Payment.filter(id=refund.payment_id).select_for_update().get()
        refund = await Refund.get(id=refund.id)
        if refund.status != RefundStatus.PENDING:
            return False
        money = format_money(refund.amount, refund.currency)
        if succeeded:
            changes = {"settled_at": now, "failure_reason": None, "updated_at": now}
            if reference:
                changes["gateway_reference"] = reference
            if not await _move(refund, "succeed", actor, **changes):
                return False
            await _audit(payment, "refund_succeeded", actor, f"{refund_id}: {money} {detail}")
            await _tell(
                payment, refund, "refund_done", f"Refund {refund_id} of {money} was paid back."
            )
            return True
        why = (reason or "refused by the gateway")[:200]
        if refund.tries < settings.refund_attempts:
            await Refund.filter(id=refund.id, status=RefundStatus.PENDING).update(
                failure_reason=why, updated_at=now
            )
            await _audit(payment, "refund_refused", actor, f"{refund_id}: {why}; will retry")
            return True
        if not await _move(
            refund, "fail", actor, failure_reason=why, settled_at=now, updated_at=now
        ):
            return False
        # Money not returned no longer counts as refunded: an operator may refund the rest.
        await Payment.filter(id=payment.id).update(
            refunded_amount=F("refunded_amount") - refund.amount
        )
        await _audit(payment, "refund_failed", actor, f"{refund_id}: {why}")
        await _tell(
            payment,
            refund,
            "refund_failed",
            f"Refund {refund_id} of {money} could not be paid back ({why}). Our team will "
            "contact you to return it another way.",
        )
        return True

    return await db.atomic(work)


async def _move(refund: Refund, event: str, by: Actor, **changes: object) -> bool:
    """Compare-and-set a refund's status through the refund machine; logged and counted
    (running.refund_moved) once the transaction commits."""
    source = RefundStatus(refund.status)
    RefundMachine(model=refund, state_field="status").send(event)
    moved = await Refund.filter(id=refund.id, status=source).update(status=refund.status, **changes)
    if not moved:
        refund.status = source
        return False
    running.refund_moved(refund, source, by)
    # The attempt's card lists its refunds: a trigger on `refunds.status` tells its open
    # streams (migration 0003), in this transaction.
    return True


async def _audit(payment: Payment, event: str, actor: Actor, detail: str) -> None:
    await PaymentEvent.create(
        payment_id=payment.id,
        from_status=payment.status,
        to_status=payment.status,
        event=event,
        actor=actor,
        detail=detail[:300],
    )


async def _tell(payment: Payment, refund: Refund, kind: str, message: str) -> None:
    booking = await Booking.get(id=payment.booking_id).only("id", "pnr")
    await notify(
        payment.user_id,
        booking.id,
        kind,
        f"Booking {booking.pnr}: {message}",
        subject=f"Booking {booking.pnr}: refund {refund.refund_id}",
        body=message,
    )


async def reconcile_refunds(
    gateway: Gateway,
    settings: Settings,
    payment_id: int | None = None,
    now: datetime | None = None,
) -> int:
    """Ask the gateway about pending refunds (all quiet ones, or one payment's); retry
    refused ones; returns how many settled."""
    query = Refund.filter(status=RefundStatus.PENDING)
    if payment_id is not None:
        query = query.filter(payment_id=payment_id)
    else:
        quiet = (now or service.now_utc()) - timedelta(seconds=settings.gateway_delay + 5)
        query = query.filter(updated_at__lt=quiet)
    settled = 0
    for refund in await query.order_by("id").limit(BATCH):
        settled += await _reconcile_one(gateway, settings, refund)
    return settled


async def _reconcile_one(gateway: Gateway, settings: Settings, refund: Refund) -> int:
    answer = await gateway.query_refund(refund.refund_id)
    if answer.state == "unknown" or answer.attempt < refund.attempts:
        if refund.attempts == 0:
            await ask_gateway(gateway, settings, refund.id)
        else:  # claimed, then lost before the gateway heard of it: ask again, same attempt
            await _send(gateway, settings, refund)
        return 0
    if answer.state == "pending":
        return 0
    succeeded = answer.state == "succeeded"
    if succeeded or refund.tries >= settings.refund_attempts:
        return int(
            await settle_refund(
                settings,
                refund.refund_id,
                succeeded,
                reason=answer.failure_reason,
                reference=answer.reference,
                actor=Actor.SYSTEM,
                detail="reconciled with the gateway",
            )
        )
    await ask_gateway(gateway, settings, refund.id)  # refused: try again
    return 0


async def refund_by_operator(
    gateway: Gateway,
    settings: Settings,
    *,
    operator_id: int,
    transaction_id: str,
    amount: int | None,
    reason: str,
) -> Refund:
    """A refund without cancellation charges; the whole remainder cancels the booking."""
    reason = (reason or "").strip()
    if not 3 <= len(reason) <= 300:
        raise Invalid(
            "Give a reason of 3 to 300 characters.",
            errors={"reason": "Give a reason of 3 to 300 characters."},
        )
    if amount is not None and amount <= 0:
        raise Invalid("The amount must be more than zero.", errors={"amount": "More than zero."})
    found = await Payment.get_or_none(transaction_id=transaction_id).only("id")
    if found is None:
        raise NotFound("No such payment.")
    now = service.now_utc()

    async def work() -> tuple[Refund, bool]:
        payment = await Payment.filter(id=found.id).select_for_update().get()
        if payment.status not in REFUNDABLE:
            raise Conflict(
                f"Only a successful or partly refunded payment can be refunded; this one is "
                f"{payment.status.value.replace('_', ' ')}."
            )
        refundable = payment.amount - payment.refunded_amount
        value = refundable if amount is None else amount
        if value <= 0 or value > refundable:
            raise Conflict(
                f"At most {format_money(refundable, payment.currency)} can still be refunded."
            )
        # The same operator pressing "refund" twice: one refund.
        if same := await Refund.filter(
            payment_id=payment.id,
            operator_id=operator_id,
            amount=value,
            reason=reason,
            created_at__gte=now - timedelta(seconds=60),
        ).first():
            return same, False
        booking = await _lock_booking(payment.booking_id)
        whole = value == refundable
        refund = await _open_refund(
            payment,
            booking,
            [],
            value,
            actor=Actor.OPERATOR,
            reason=reason,
            operator_id=operator_id,
            whole=whole,
        )
        await OperatorAction.create(
            operator_id=operator_id,
            action="refund",
            transaction_id=transaction_id,
            reason=reason,
            detail=f"{refund.refund_id}: {format_money(value, payment.currency)}",
        )
        return refund, True

    refund, created = await db.atomic(work)
    if created:
        await _hand_over(gateway, settings, refund.id)
    return await Refund.get(id=refund.id)


async def settle_and_follow_up(
    gateway: Gateway, settings: Settings, transaction_id: str, succeeded: bool, **kw
) -> service.Settlement:
    """Settle an attempt; a success its booking cannot take (expired, train full) is
    refunded in full."""
    result = await service.settle(transaction_id, succeeded, **kw)
    if result.needs_refund:
        await refund_in_full(
            gateway,
            settings,
            result.payment.id,
            actor=Actor.SYSTEM,
            reason=service.LATE_REFUND_MESSAGE,
        )
    return result


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
        booking = await _lock_booking(payment.booking_id)
        return await _open_refund(
            payment, booking, [], left, actor=actor, reason=reason, whole=True
        )

    refund = await db.atomic(work)
    if refund is not None:
        await _hand_over(gateway, settings, refund.id)
    return refund


async def refund_departed(gateway: Gateway, settings: Settings, booking_id: int) -> Refund | None:
    """A booking still waitlisted when its train departed: cancelled, and refunded in full
    less the waitlist clerkage (and GST). None when it is no longer waitlisted."""
    rules = rules_in_force(settings)

    async def work() -> Refund | None:
        try:
            payment = await _locked_payment(booking_id)
        except Conflict:
            return None
        locked = await _lock_booking(booking_id)
        if locked.status != BookingStatus.WAITLISTED:
            return None
        offer = departure_quote(ticket_of(locked, paid=True), rules)
        money = partial(format_money, currency=offer.currency)
        reason = (
            f"Train {locked.train.number} departed while booking {locked.pnr} was still "
            f"waitlisted: refund of {money(offer.refund)} (clerkage {money(offer.charge)}, "
            f"GST {money(offer.gst)})"
        )
        return await _open_quoted(payment, locked, offer, actor=Actor.SYSTEM, reason=reason)

    refund = await db.atomic(work)
    if refund is not None:
        await _hand_over(gateway, settings, refund.id)
    return refund


async def retry_failed(
    gateway: Gateway, settings: Settings, *, operator_id: int, refund_id: str, reason: str
) -> Refund:
    """An operator asks the gateway again about a failed refund: back to `pending`, with a
    fresh count of attempts."""
    now = service.now_utc()

    async def work() -> Refund:
        payment, refund = await _move_failed(refund_id, "retry", settled_at=None, updated_at=now)
        await _audit(payment, "refund_retried", Actor.OPERATOR, f"{refund_id}: {reason}")
        await _operator_action(operator_id, "refund_retry", payment, reason, refund_id)
        return refund

    refund = await db.atomic(work)
    await _hand_over(gateway, settings, refund.id)
    return await Refund.get(id=refund.id)


async def settle_offline(
    *, operator_id: int, refund_id: str, reference: str, reason: str
) -> Refund:
    """An operator records a failed refund's money as returned another way (a bank
    transfer, say): `succeeded`, the operator as actor, with their reference."""
    now = service.now_utc()

    async def work() -> Refund:
        payment, refund = await _move_failed(
            refund_id,
            "settle_offline",
            offline_reference=reference,
            actor=Actor.OPERATOR,
            operator_id=operator_id,
            settled_at=now,
            updated_at=now,
        )
        money = format_money(refund.amount, refund.currency)
        detail = f"{refund_id}: {money} returned outside the gateway, reference {reference}"
        await _audit(payment, "refund_settled_offline", Actor.OPERATOR, f"{detail} — {reason}")
        await _operator_action(operator_id, "offline", payment, reason, detail)
        await _tell(
            payment,
            refund,
            "refund_done",
            f"Refund {refund_id} of {money} was paid back to you another way "
            f"(reference {reference}).",
        )
        return refund

    return await db.atomic(work)


async def _move_failed(refund_id: str, event: str, **changes: object) -> tuple[Payment, Refund]:
    """Inside a transaction: move a failed refund on (`retry`, `settle_offline`), its
    amount counted as refunded again, never past the payment; 404 unknown, 409 not failed.

    Lock order: the payment, then the refund (as everywhere: payments first)."""
    found = await Refund.get_or_none(refund_id=refund_id).only("id", "payment_id")
    if found is None:
        raise NotFound("No such refund.")
    payment = await Payment.filter(id=found.payment_id).select_for_update().get()
    refund = await Refund.filter(id=found.id).select_for_update().get()
    if refund.status != RefundStatus.FAILED:
        raise Conflict(
            f"Only a failed refund can be retried or settled; this one is {refund.status}."
        )
    if not await Payment.filter(
        id=payment.id, refunded_amount__lte=payment.amount - refund.amount
    ).update(refunded_amount=F("refunded_amount") + refund.amount):
        raise Conflict(
            "The payment has been refunded meanwhile: this refund would exceed what was paid."
        )
    # A retry starts a fresh count of gateway attempts (see Refund.tries).
    changes.setdefault("retried_attempts", refund.attempts)
    if not await _move(refund, event, Actor.OPERATOR, failure_reason=None, **changes):
        raise Conflict("This refund changed meanwhile. Reload and try again.")
    return payment, refund


async def _operator_action(
    operator_id: int, action: str, payment: Payment, reason: str, detail: str
) -> None:
    await OperatorAction.create(
        operator_id=operator_id,
        action=action,
        transaction_id=payment.transaction_id,
        reason=reason,
        detail=detail[:300],
    )


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

    `decide` runs in the transaction with the payments and the booking locked (in that
    order): it answers the refund, charge, GST and positions, or None to change nothing."""

    async def work() -> list[Refund] | None:
        payments = list(
            await Payment.filter(booking_id=booking_id, status__in=list(REFUNDABLE))
            .order_by("-id")
            .select_for_update()
        )
        booking = await Booking.filter(id=booking_id).select_for_update().get()
        await booking.fetch_related("train")
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
                await _open_refund(
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
            await _hand_over(gateway, settings, refund.id)
    return made


async def cancel_parts_due(booking_id: int) -> None:
    """Parts still due when their booking is cancelled otherwise than for non-payment."""
    from railserve.payment.models import PartStatus, PaymentPart

    await PaymentPart.filter(booking_id=booking_id, status=PartStatus.DUE).update(
        status=PartStatus.CANCELLED
    )
