"""The console's refund actions: a refund without charges, and a failed refund retried or
recorded as settled outside the gateway; each with the operator's reason, audited."""

from __future__ import annotations

from datetime import timedelta

from railserve import db, running, store
from railserve.bounds import REASON
from railserve.config import Settings
from railserve.display import format_money
from railserve.errors import Conflict, Invalid, NotFound
from railserve.payment import service
from railserve.payment.models import Actor, OperatorAction, Payment, Refund, RefundStatus
from railserve.payment.providers import Gateway
from railserve.payment.refunds import REFUNDABLE
from railserve.payment.refunds.handover import hand_over, with_owner
from railserve.payment.refunds.opening import lock_booking, open_refund
from railserve.payment.steps.refund import OperatorMove, move_failed


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
    move = OperatorMove(
        "retry",
        operator_id,
        reason,
        audit_event="refund_retried",
        audit_detail=f"{refund_id}: {reason}",
        action="refund_retry",
        action_detail=refund_id,
        changes={"settled_at": None, "updated_at": now},
    )
    refund = await _move_failed(refund_id, move)
    await hand_over(gateway, settings, refund.id)
    return await Refund.get(id=refund.id)


async def settle_offline(
    *, operator_id: int, refund_id: str, reference: str, reason: str
) -> Refund:
    """An operator records a failed refund's money as returned another way (a bank
    transfer, say): `succeeded`, the operator as actor, with their reference."""
    now = service.now_utc()
    found = await _failed(refund_id)
    money = format_money(found.amount, found.currency)
    detail = f"{refund_id}: {money} returned outside the gateway, reference {reference}"
    move = OperatorMove(
        "settle_offline",
        operator_id,
        reason,
        audit_event="refund_settled_offline",
        audit_detail=f"{detail} — {reason}",
        action="offline",
        action_detail=detail,
        changes={
            "offline_reference": reference,
            "actor": Actor.OPERATOR.value,
            "operator_id": operator_id,
            "settled_at": now,
            "updated_at": now,
        },
        notice=f"Refund {refund_id} of {money} was paid back to you another way "
        f"(reference {reference}).",
    )
    return await _move_failed(refund_id, move, found)


async def _failed(refund_id: str) -> Refund:
    """The refund with its payment's booking and user; 404 when there is none."""
    found = await with_owner(refund_id)
    if found is None:
        raise NotFound("No such refund.")
    return found


async def _move_failed(refund_id: str, move: OperatorMove, found: Refund | None = None) -> Refund:
    """Move a failed refund on (`retry`, `settle_offline`) in one transaction
    (steps/refund.py): its amount counted as refunded again, never past the payment;
    404 unknown, 409 not failed. Logged and counted once committed."""
    refund = found or await _failed(refund_id)
    refund.status = await store.run(lambda: move_failed(refund, move))
    for name, value in {"failure_reason": None, **move.changes}.items():
        setattr(refund, name, value)  # the row as the step left it (retried_attempts aside)
    running.refund_moved(refund, RefundStatus.FAILED, Actor.OPERATOR)
    return refund
