"""The console's refund actions: a refund without charges, and a failed refund retried or
recorded as settled outside the gateway; each with the operator's reason, audited."""

from __future__ import annotations

from datetime import timedelta

from tortoise.expressions import F

from railserve import db
from railserve.bounds import REASON, clip
from railserve.config import Settings
from railserve.display import format_money
from railserve.errors import Conflict, Invalid, NotFound
from railserve.payment import service
from railserve.payment.models import Actor, OperatorAction, Payment, Refund, RefundStatus
from railserve.payment.providers import Gateway
from railserve.payment.refunds import REFUNDABLE
from railserve.payment.refunds.handover import audit, hand_over, move_refund, tell_refund
from railserve.payment.refunds.opening import lock_booking, open_refund


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
    if not REASON.fits(reason):
        message = f"Give a reason of {REASON.words} characters."
        raise Invalid(message, errors={"reason": message})
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
        booking = await lock_booking(payment.booking_id)
        whole = value == refundable
        refund = await open_refund(
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
        await hand_over(gateway, settings, refund.id)
    return await Refund.get(id=refund.id)


async def retry_failed(
    gateway: Gateway, settings: Settings, *, operator_id: int, refund_id: str, reason: str
) -> Refund:
    """An operator asks the gateway again about a failed refund: back to `pending`, with a
    fresh count of attempts."""
    now = service.now_utc()

    async def work() -> Refund:
        payment, refund = await _move_failed(refund_id, "retry", settled_at=None, updated_at=now)
        await audit(payment, "refund_retried", Actor.OPERATOR, f"{refund_id}: {reason}")
        await _operator_action(operator_id, "refund_retry", payment, reason, refund_id)
        return refund

    refund = await db.atomic(work)
    await hand_over(gateway, settings, refund.id)
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
        await audit(payment, "refund_settled_offline", Actor.OPERATOR, f"{detail} — {reason}")
        await _operator_action(operator_id, "offline", payment, reason, detail)
        await tell_refund(
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
    if not await move_refund(refund, event, Actor.OPERATOR, failure_reason=None, **changes):
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
        detail=clip(detail),
    )
