"""What an operator can do to an attempt, each with a reason and an audit row.

The checks come first and refuse with nothing written (422 for a bad reason or amount,
409 for an action the attempt's state does not allow); an action that happens writes
one OperatorAction, and any transition it makes is audited with actor `operator`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from railserve.bounds import REASON, REFERENCE, clip
from railserve.config import Settings
from railserve.display import format_money
from railserve.errors import Conflict, Invalid, NotFound
from railserve.models import User
from railserve.money import format_amount, parse_amount
from railserve.payment import cancelling
from railserve.payment.models import (
    Actor,
    OperatorAction,
    Payment,
    PaymentStatus,
    RefundStatus,
    WebhookLog,
)
from railserve.payment.refunds import console, handover
from railserve.payment.webhook.handler import handle
from railserve.payment.webhook.log import signature_holds, signed_at
from railserve.sweep import reconcile_one
from railserve.vocabulary import phrase

if TYPE_CHECKING:  # the console is handed a gateway; it names the protocol only for types
    from railserve.payment.providers import Gateway


@dataclass(frozen=True)
class Done:
    """What happened, in words for the operator's flash message."""

    message: str


def reason_from(form: Mapping[str, str]) -> str:
    reason = " ".join((form.get("reason") or "").split())
    if not (REASON.fits(reason) and reason.isprintable()):
        message = f"Give a reason of {REASON.words} printable characters."
        raise Invalid(message, errors={"reason": message})
    return reason


def refund_amount(form: Mapping[str, str], currency: str = "INR") -> int | None:
    """Minor units from the `amount` field (the currency's digits); None (all still
    refundable) when it is empty."""
    raw = (form.get("amount") or "").strip()
    if not raw:
        return None
    amount = parse_amount(raw, currency)
    if amount is None or amount <= 0:
        example = format_amount(62500, currency)
        message = f"Enter a positive amount in {currency}'s digits, e.g. {example}."
        raise Invalid(message, errors={"amount": message})
    return amount


async def _record(
    operator: User, action: str, transaction_id: str | None, reason: str, detail: str
):
    await OperatorAction.create(
        operator_id=operator.id,
        action=action,
        transaction_id=transaction_id,
        reason=reason,
        detail=clip(detail),
    )


async def record_refusal(
    operator: User, action: str, transaction_id: str | None, form: Mapping[str, str], error
) -> None:
    """An action the checks refused is audited too, with why: an over-refund or a bad amount
    an operator tried is as much a part of the record as the refunds that happened."""
    reason = " ".join(str(form.get("reason") or "").split())
    reason = clip("".join(c for c in reason if c.isprintable())) or "(no reason given)"
    await _record(
        operator,
        f"{action} refused"[:20],
        transaction_id,
        reason,
        f"Refused ({error.status}): {error.message}",
    )


async def payment_or_404(transaction_id: str) -> Payment:
    payment = await Payment.get_or_none(transaction_id=transaction_id)
    if payment is None:
        raise NotFound("No such payment.")
    return payment


async def cancel(operator: User, payment: Payment, form: Mapping[str, str]) -> Done:
    reason = reason_from(form)
    if payment.status != PaymentStatus.PENDING or not await cancelling.cancel_pending(
        payment.id, reason, actor=Actor.OPERATOR
    ):
        current = await Payment.get(id=payment.id)
        raise Conflict(
            f"Only a pending attempt can be cancelled; this one is {phrase(current.status)}."
        )
    await _record(operator, "cancel", payment.transaction_id, reason, "pending attempt cancelled")
    return Done(f"Attempt {payment.transaction_id} cancelled.")


async def refund(
    settings: Settings, gateway: Gateway, operator: User, payment: Payment, form: Mapping[str, str]
) -> Done:
    """The refunds service checks, refunds and writes the OperatorAction in one transaction."""
    reason = reason_from(form)
    amount = refund_amount(form, payment.currency)
    made = await console.refund_by_operator(
        gateway,
        settings,
        operator_id=operator.id,
        transaction_id=payment.transaction_id,
        amount=amount,
        reason=reason,
    )
    money = format_money(made.amount, made.currency)
    return Done(f"Refund {made.refund_id} of {money} is {phrase(made.status)}.")


async def reconcile(
    settings: Settings, gateway: Gateway, operator: User, payment: Payment, form: Mapping[str, str]
) -> Done:
    reason = reason_from(form)
    said = []
    if payment.status == PaymentStatus.PENDING:
        state = await reconcile_one(
            settings, gateway, payment, actor=Actor.OPERATOR, detail=f"reconciled: {reason}"
        )
        said.append(
            "the attempt was settled from the gateway's answer"
            if state == "applied"
            else f"the gateway says the attempt is {state}"
        )
    else:
        said.append(f"the attempt is already {phrase(payment.status)}")
    pending = await payment.refunds.filter(status=RefundStatus.PENDING).count()
    if pending:
        settled = await handover.reconcile_refunds(gateway, settings, payment.id)
        said.append(f"{settled} of {pending} pending refunds settled")
    detail = "; ".join(said)
    await _record(operator, "reconcile", payment.transaction_id, reason, detail)
    return Done(f"Reconciled {payment.transaction_id}: {detail}.")


async def replay(
    settings: Settings, gateway: Gateway, operator: User, entry: WebhookLog, form: Mapping[str, str]
) -> Done:
    """Apply a stored event again through the same handler; only its age is forgiven."""
    reason = reason_from(form)
    raw = entry.body.encode("utf-8")
    signed = signed_at(entry.signature)  # None for a format without timestamps
    now = time.time() if signed is None else signed
    if not signature_holds(settings, raw, entry.signature, now, gateway, entry.provider):
        raise Conflict("This event's stored signature does not hold: it cannot be replayed.")
    outcome = await handle(settings, gateway, raw, entry.signature, entry.provider, now=now)
    await _record(operator, "replay", entry.transaction_id, reason, f"{entry.event_id}: {outcome}")
    if outcome in ("already seen", "already applied"):
        return Done(f"Event {entry.event_id} was already applied: nothing changed.")
    return Done(f"Event {entry.event_id} applied.")


def reference_from(form: Mapping[str, str]) -> str:
    reference = (form.get("reference") or "").strip()
    if not (REFERENCE.fits(reference) and reference.isprintable()):
        message = f"Give the reference of the transfer: {REFERENCE.words} printable characters."
        raise Invalid(message, errors={"reference": message})
    return reference


async def retry_refund(
    settings: Settings, gateway: Gateway, operator: User, refund_id: str, form: Mapping[str, str]
) -> Done:
    reason = reason_from(form)
    made = await console.retry_failed(
        gateway, settings, operator_id=operator.id, refund_id=refund_id, reason=reason
    )
    return Done(f"Refund {made.refund_id} asked of the gateway again: it is {made.status}.")


async def settle_refund_offline(operator: User, refund_id: str, form: Mapping[str, str]) -> Done:
    reason = reason_from(form)
    reference = reference_from(form)
    made = await console.settle_offline(
        operator_id=operator.id, refund_id=refund_id, reference=reference, reason=reason
    )
    money = format_money(made.amount, made.currency)
    return Done(f"Refund {made.refund_id} of {money} recorded as returned ({reference}).")
