"""A pending refund handed to its gateway, and the gateway's verdict settled: at once,
by its signed webhook, or when the sweep reconciles refunds still pending."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from tortoise.expressions import F

from railserve import db, running
from railserve.bounds import clip
from railserve.config import Settings
from railserve.display import format_money
from railserve.models import Booking
from railserve.notify import notify
from railserve.payment import service
from railserve.payment.machine import RefundMachine
from railserve.payment.models import Actor, Payment, PaymentEvent, Refund, RefundStatus
from railserve.payment.providers import Gateway, RefundRequest

BATCH = 500

log = logging.getLogger(__name__)


async def hand_over(gateway: Gateway, settings: Settings, refund_pk: int) -> None:
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
            if not await move_refund(refund, "succeed", actor, **changes):
                return False
            await audit(payment, "refund_succeeded", actor, f"{refund_id}: {money} {detail}")
            await tell_refund(
                payment, refund, "refund_done", f"Refund {refund_id} of {money} was paid back."
            )
            return True
        why = (reason or "refused by the gateway")[:200]
        if refund.tries < settings.refund_attempts:
            await Refund.filter(id=refund.id, status=RefundStatus.PENDING).update(
                failure_reason=why, updated_at=now
            )
            await audit(payment, "refund_refused", actor, f"{refund_id}: {why}; will retry")
            return True
        if not await move_refund(
            refund, "fail", actor, failure_reason=why, settled_at=now, updated_at=now
        ):
            return False
        # Money not returned no longer counts as refunded: an operator may refund the rest.
        await Payment.filter(id=payment.id).update(
            refunded_amount=F("refunded_amount") - refund.amount
        )
        await audit(payment, "refund_failed", actor, f"{refund_id}: {why}")
        await tell_refund(
            payment,
            refund,
            "refund_failed",
            f"Refund {refund_id} of {money} could not be paid back ({why}). Our team will "
            "contact you to return it another way.",
        )
        return True

    return await db.atomic(work)


async def move_refund(refund: Refund, event: str, by: Actor, **changes: object) -> bool:
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


async def audit(payment: Payment, event: str, actor: Actor, detail: str) -> None:
    await PaymentEvent.create(
        payment_id=payment.id,
        from_status=payment.status,
        to_status=payment.status,
        event=event,
        actor=actor,
        detail=clip(detail),
    )


async def tell_refund(payment: Payment, refund: Refund, kind: str, message: str) -> None:
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
