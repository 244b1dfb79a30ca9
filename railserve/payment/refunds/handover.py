"""A pending refund handed to its gateway, and the gateway's verdict settled: at once,
by its signed webhook, or when the sweep reconciles refunds still pending."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from tortoise.models import Model

from railserve import running, store
from railserve.config import Settings
from railserve.payment import service
from railserve.payment.models import Actor, Payment, Refund, RefundStatus
from railserve.payment.providers import Gateway, RefundRequest
from railserve.payment.steps import refund as settling
from railserve.payment.steps.settle import Verdict

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
    record: Model | None = None,
) -> bool:
    """Apply the gateway's verdict on a pending refund, atomically (steps/refund.py);
    False if nothing moved. `record` is written in the transaction whatever it decides.

    A refusal leaves the refund pending for the sweep to retry, until the gateway has
    refused it `RAILSERVE_REFUND_ATTEMPTS` times; then it stays failed for an operator.
    """
    # Read before the transaction, to hold its locks for less time: it decides nothing
    # (the step reads the refund again holding its payment's row).
    refund = await with_owner(refund_id)
    if refund is None or (refund.status != RefundStatus.PENDING and record is None):
        return False
    verdict = Verdict(succeeded, reason, actor=actor, detail=detail)
    now, allowed = service.now_utc(), settings.refund_attempts
    outcome = await store.run(
        lambda: settling.settle_refund(refund, verdict, allowed, now, record, reference)
    )
    if outcome.target is not None:  # logged and counted now that it holds
        refund.status = outcome.target
        running.refund_moved(refund, RefundStatus.PENDING, actor)
    return outcome.applied


async def with_owner(refund_id: str) -> Refund | None:
    """The refund with its payment's booking and user (what its step tells them)."""
    found = await Refund.filter(refund_id=refund_id).select_related(
        "payment__booking", "payment__user"
    )
    return found[0] if found else None


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
