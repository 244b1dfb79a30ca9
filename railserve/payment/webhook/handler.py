"""Apply one verified event exactly once, or refuse it and say why in the audit trail.

The event's id is recorded in the same transaction as its effects, so a repeated delivery
is answered "already seen"; an event that contradicts a final state moves nothing (and a
late success's money is returned).
"""

from __future__ import annotations

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Subquery

from railserve.bounds import clip
from railserve.config import Settings
from railserve.errors import Conflict, NotFound
from railserve.money import format_amount
from railserve.payment import service, settlement
from railserve.payment.models import (
    Actor,
    Payment,
    PaymentEvent,
    PaymentStatus,
    Refund,
    RefundStatus,
    WebhookEvent,
    WebhookLog,
)
from railserve.payment.providers import Gateway
from railserve.payment.providers.router import Gateways
from railserve.payment.refunds import handover, spread
from railserve.payment.webhook.event import REFUND_EVENTS, Event, read
from railserve.prepared import PreparedRead

# What each payment event means for each status: apply it, or it was already so.
APPLIES_TO = {
    "payment.succeeded": PaymentStatus.PENDING,
    "payment.failed": PaymentStatus.PENDING,
}
ALREADY = {
    "payment.succeeded": PaymentStatus.CAPTURED,
    "payment.failed": (PaymentStatus.FAILED,),
}


# Every delivery's read, its SQL built once (railserve/prepared.py).
_SEEN = PreparedRead(WebhookEvent, lambda event_id: WebhookEvent.filter(id=event_id).values("id"))
_TO_SETTLE = PreparedRead(
    Payment,
    lambda event_id, transaction_id: (
        Payment.filter(transaction_id=transaction_id)
        .annotate(seen=Subquery(_SEEN.build(event_id)))
        .select_related(*service.SETTLEMENT_JOINS)
    ),
)


async def _seen(payment: Payment | None, event_id: str) -> bool:
    if payment is None:  # an unknown transaction: the event may still have been recorded
        return bool(await _SEEN.rows(event_id))
    return payment.seen is not None


async def handle(
    settings: Settings,
    gateways: Gateways,
    raw: bytes,
    signature: str | None,
    provider: str = "simulated",
    *,
    now: float | None = None,
    receipt: WebhookLog | None = None,
) -> str:
    """Apply one signed event from `provider`; returns what happened. Raises a DomainError
    to refuse it. `receipt`: the log entry of an "applied" answer, which the settlement
    may write in its own transaction (then marked saved)."""
    event = read(settings, gateways, provider, raw, signature, now)
    # One read: the attempt, with what a settlement needs joined (`settle` takes it instead
    # of reading it again), and whether this event was seen before.
    found = await _TO_SETTLE.objects(event.id, event.transaction_id)
    payment = found[0] if found else None
    if await _seen(payment, event.id):
        return "already seen"
    if payment is None or not gateways.same_webhook(payment.gateway, provider):
        raise NotFound("Unknown transaction.")
    # As one gateway, the router sends refunds and queries to the attempt's own provider.
    gateway: Gateway = gateways
    if event.type in REFUND_EVENTS:
        return await _handle_refund(settings, payment, event)
    if (event.amount, event.currency) != (
        format_amount(payment.amount, payment.currency),
        payment.currency,
    ):
        await _record_rejection(payment, event, "amount or currency does not match the attempt")
        raise Conflict("The amount or currency does not match the attempt.")

    if payment.status in ALREADY[event.type]:
        return "already applied"
    if payment.status != APPLIES_TO[event.type]:
        await _contradiction(settings, gateway, payment, event)
    try:
        applied = await _apply(settings, gateway, event, payment, receipt)
    except IntegrityError:
        # The same event id, delivered at the same moment. Any other constraint that
        # refused the change must not be acknowledged, or the gateway would stop retrying.
        if await WebhookEvent.exists(id=event.id):
            return "already seen"
        raise
    if applied:
        return "applied"
    current = await Payment.get(id=payment.id)
    if current.status in ALREADY[event.type]:
        return "already applied"
    await _contradiction(settings, gateway, current, event)


async def _handle_refund(settings: Settings, payment: Payment, event: Event) -> str:
    """Settle the refund the event names; a final refund contradicted is refused (409)."""
    refund = await Refund.get_or_none(refund_id=event.refund_id, payment_id=payment.id)
    if refund is None:
        raise NotFound("Unknown refund for this transaction.")
    if (event.amount, event.currency) != (
        format_amount(refund.amount, refund.currency),
        refund.currency,
    ):
        await _record_rejection(
            payment, event, f"amount or currency does not match {refund.refund_id}"
        )
        raise Conflict("The amount or currency does not match the refund.")
    succeeded = event.type == "refund.succeeded"
    final = RefundStatus.SUCCEEDED if succeeded else RefundStatus.FAILED
    if refund.status == final:
        return "already applied"
    if refund.status != RefundStatus.PENDING:
        await _record_rejection(payment, event, f"{event.type} contradicts refund {refund.status}")
        raise Conflict(f"The event contradicts the refund's state ({refund.status}).")
    seen = WebhookEvent(id=event.id, type=event.type, transaction_id=event.transaction_id)
    try:
        await handover.settle_refund(
            settings,
            refund.refund_id,
            succeeded,
            reason=event.failure_reason,
            reference=event.reference,
            detail=f"webhook {event.id}",
            record=seen,
        )
    except IntegrityError:
        if await WebhookEvent.exists(id=event.id):
            return "already seen"
        raise
    return "applied"


async def _apply(
    settings: Settings,
    gateway: Gateway,
    event: Event,
    payment: Payment,
    receipt: WebhookLog | None = None,
) -> bool:
    """Apply the event; its id is recorded in the same transaction as its effects."""
    seen = WebhookEvent(id=event.id, type=event.type, transaction_id=event.transaction_id)
    detail = f"webhook {event.id}"
    result = await settlement.settle_and_follow_up(
        gateway,
        settings,
        event.transaction_id,
        event.type == "payment.succeeded",
        reason=event.failure_reason or "Payment failed",
        retryable=event.retryable,
        detail=detail,
        record=seen,
        loaded=payment,
        receipt=receipt,
    )
    return result.applied


async def _contradiction(
    settings: Settings, gateway: Gateway, payment: Payment, event: Event
) -> None:
    """Refuse an event that contradicts a final state: record it, move nothing.

    A success for an attempt we already cancelled or failed means the gateway holds money
    we will never use: ask it to give the money back, and say so in the audit trail.
    """
    why = f"{event.type} contradicts status {payment.status}"
    if event.type == "payment.succeeded" and payment.status in PaymentStatus.UNSUCCESSFUL:
        refund = await spread.refund_in_full(
            gateway,
            settings,
            payment.id,
            actor=Actor.SYSTEM,
            reason=(
                f"The payment went through after this attempt was {payment.status}, so it is "
                "refunded in full"
            ),
        )
        if refund is not None:
            why += f"; money returned through refund {refund.refund_id}"
    await _record_rejection(payment, event, why)
    raise Conflict(f"The event contradicts the attempt's state ({payment.status}).")


async def _record_rejection(payment: Payment, event: Event, why: str) -> None:
    await PaymentEvent.create(
        payment_id=payment.id,
        from_status=payment.status,
        to_status=payment.status,
        event="webhook_rejected",
        actor=Actor.GATEWAY,
        detail=clip(f"{event.id}: {why}"),
    )
