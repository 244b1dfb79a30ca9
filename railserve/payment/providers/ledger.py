"""The simulators' shared refund ledger: both take and answer about refunds the same way.

A real provider keeps its own books; our two simulators share the `simulated_refunds`
table (one row per refund attempt, keyed by refund id and attempt) and these two steps.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from tortoise.exceptions import IntegrityError

from railserve.payment import providers
from railserve.payment.models import SimulatedCharge, SimulatedRefund


async def take_refund(
    request: providers.RefundRequest,
    charge: SimulatedCharge | None,
    *,
    provider: str,
    delay: float,
    reference_prefix: str,
    no_charge: str,
    excess: str,
    refused_reason: str | None = None,
) -> tuple[providers.RefundResult, SimulatedRefund | None]:
    """Answer a refund request at once; the new ledger row (to report later) or None."""
    if charge is None or not charge.succeeded:
        return providers.RefundResult(False, reason=no_charge), None
    if charge.currency != request.currency:
        return providers.RefundResult(False, reason="The refund currency does not match"), None
    key = f"{request.refund_id}:{request.attempt}"
    if existing := await SimulatedRefund.get_or_none(key=key):
        return providers.RefundResult(True, reference=existing.reference), None
    refunded = sum(
        await SimulatedRefund.filter(
            transaction_id=request.transaction_id, succeeded=True
        ).values_list("amount", flat=True)
    )
    if refunded + request.amount > charge.amount:
        return providers.RefundResult(False, reason=excess), None
    record = SimulatedRefund(
        key=key,
        refund_id=request.refund_id,
        attempt=request.attempt,
        provider=provider,
        transaction_id=request.transaction_id,
        amount=request.amount,
        currency=request.currency,
        succeeded=refused_reason is None,
        failure_reason=refused_reason,
        reference=reference_prefix + secrets.token_hex(8).upper(),
        settles_at=datetime.now(UTC) + timedelta(seconds=delay),
    )
    try:
        await record.save(force_create=True)
    except IntegrityError:  # the same attempt asked twice at once: one refund
        record = await SimulatedRefund.get(key=key)
    return providers.RefundResult(True, reference=record.reference), record


async def refund_state(refund_id: str, provider: str) -> providers.RefundState:
    """What the ledger knows of a refund: its latest attempt."""
    latest = (
        await SimulatedRefund.filter(refund_id=refund_id, provider=provider)
        .order_by("-attempt")
        .first()
    )
    if latest is None:
        return providers.RefundState("unknown")
    if latest.settles_at > datetime.now(UTC):
        return providers.RefundState("pending", latest.attempt, latest.reference)
    if latest.succeeded:
        return providers.RefundState("succeeded", latest.attempt, latest.reference)
    return providers.RefundState("failed", latest.attempt, latest.reference, latest.failure_reason)
