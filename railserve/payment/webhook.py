"""The gateways' signed callbacks: verify, de-duplicate, and apply exactly once.

One handler for every provider. Events in RailServe's own format (POST /payment/webhook,
`RailServe-Signature`) are verified here; a provider with a format of its own (SimUPI)
verifies and translates its events (`read_webhook`) into this format. The simulators hand
their events to `handle` in-process, so real and simulated gateways go through the same
checks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from dataclasses import dataclass

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Subquery

from railserve import running
from railserve.bounds import REFUND_ID, TRANSACTION_ID, clip
from railserve.config import Settings
from railserve.errors import BadRequest, BadSignature, Conflict, DomainError, NotFound
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
from railserve.payment.signature import verify
from railserve.prepared import PreparedRead

EVENT_TYPES = ("payment.succeeded", "payment.failed", "refund.succeeded", "refund.failed")
REFUND_EVENTS = ("refund.succeeded", "refund.failed")
EVENT_ID = re.compile(r"evt_[A-Za-z0-9_-]{1,60}")

# What each payment event means for each status: apply it, or it was already so.
APPLIES_TO = {
    "payment.succeeded": PaymentStatus.PENDING,
    "payment.failed": PaymentStatus.PENDING,
}
ALREADY = {
    "payment.succeeded": PaymentStatus.CAPTURED,
    "payment.failed": (PaymentStatus.FAILED,),
}


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    transaction_id: str
    amount: str
    currency: str
    failure_reason: str | None
    retryable: bool | None
    refund_id: str | None
    reference: str | None


def parse(raw: bytes) -> Event:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("The body is not JSON.") from None
    return from_data(data)


def from_data(data: object) -> Event:
    if not isinstance(data, dict):
        raise BadRequest("The body must be a JSON object.")
    event_id, kind, txn = data.get("id"), data.get("type"), data.get("transaction_id")
    if not (isinstance(event_id, str) and EVENT_ID.fullmatch(event_id)):
        raise BadRequest("The event id is missing or malformed.")
    if kind not in EVENT_TYPES:
        raise BadRequest(f"Unknown event type; expected one of {', '.join(EVENT_TYPES)}.")
    if not (isinstance(txn, str) and TRANSACTION_ID.matches(txn)):
        raise BadRequest("The transaction id is missing or malformed.")
    amount, currency = data.get("amount"), data.get("currency")
    if not (isinstance(amount, str) and isinstance(currency, str)):
        raise BadRequest("amount and currency must be strings.")
    created = data.get("created")
    if not isinstance(created, int) or isinstance(created, bool):
        raise BadRequest("created must be unix seconds.")
    reason = data.get("failure_reason")
    if reason is not None and not isinstance(reason, str):
        raise BadRequest("failure_reason must be a string or null.")
    retryable = data.get("retryable")
    refund_id = data.get("refund_id")
    if kind in REFUND_EVENTS and not (isinstance(refund_id, str) and REFUND_ID.matches(refund_id)):
        raise BadRequest("The refund id is missing or malformed.")
    reference = data.get("reference")
    return Event(
        event_id,
        kind,
        txn,
        amount,
        currency,
        reason[:200] if reason else None,
        retryable if isinstance(retryable, bool) else None,
        refund_id if kind in REFUND_EVENTS else None,
        reference[:40] if isinstance(reference, str) else None,
    )


def read(
    settings: Settings,
    gateways: Gateways,
    provider: str,
    raw: bytes,
    signature: str | None,
    now: float | None = None,
) -> Event:
    """Verify and parse an event sent by `provider`; BadSignature (401) or BadRequest (400).

    `now` is the clock a RailServe signature's age is judged by (an operator's replay of a
    stored event passes the event's own timestamp: the HMAC must still hold).
    """
    reader = gateways.webhook_reader(provider)
    if reader is not None:
        return from_data(reader(raw, signature))
    if not verify(signature, raw, settings.webhook_secrets, time.time() if now is None else now):
        raise BadSignature("Missing, invalid or stale signature.")
    return parse(raw)


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


# --- The operators' log of every event received -------------------------------------------
LOG_BODY_LIMIT = 64 * 1024
log = logging.getLogger(__name__)


async def handle_logged(
    settings: Settings,
    gateways: Gateways,
    raw: bytes,
    signature: str | None,
    *,
    provider: str = "simulated",
) -> str:
    """`handle`, and one WebhookLog row with our answer, whatever the answer.

    The row is written after the event's own transaction has ended, so a refusal (which
    rolls nothing forward) and an unexpected error are logged as surely as a success. The
    usual success is the exception: its entry (200, "applied") is written by the
    settlement's own transaction, which saves a commit per payment.
    """
    status, result = 500, "internal error"
    receipt = _entry(provider, raw, signature, True, 200, "applied")
    try:
        outcome = await handle(settings, gateways, raw, signature, provider, receipt=receipt)
        status, result = 200, outcome
        return outcome
    except DomainError as error:
        status, result = error.status, error.message
        raise
    finally:
        running.webhook_answered(provider, status)
        if not receipt._saved_in_db:
            # An answer of 200 comes only after `handle` verified the signature.
            held = status == 200 or signature_holds(
                settings, raw, signature, time.time(), gateways, provider
            )
            # Shielded: a gateway that hangs up must not cost us the record of its event.
            await asyncio.shield(_log(provider, raw, signature, held, status, result))


def signature_holds(
    settings: Settings,
    raw: bytes,
    signature: str | None,
    now: float,
    gateways: Gateways | None = None,
    provider: str = "simulated",
) -> bool:
    """Whether the signature is the provider's over this body (a RailServe signature's age
    judged at `now`)."""
    try:
        reader = gateways.webhook_reader(provider) if gateways is not None else None
    except DomainError:  # no such provider
        return False
    if reader is None:
        return verify(signature, raw, settings.webhook_secrets, now)
    try:
        reader(raw, signature)
    except BadSignature:
        return False
    except DomainError:  # signed, but malformed
        return True
    return True


def signed_at(signature: str | None) -> int | None:
    """The `t=` of a signature header, if it has one."""
    for part in (signature or "").split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit() and len(value) <= 12:
            return int(value)
    return None


def _storable(text: str) -> str:
    """PostgreSQL text cannot hold NUL: keep the rest of what was sent."""
    return text.replace("\x00", "\ufffd")


def _fields(raw: bytes) -> dict[str, str | None]:
    """What an operator needs to find the event, read leniently from any body."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        data = {}
    # A provider's own envelope (SimUPI: {"event", "payload": {"event_id", ...}}).
    payload = data.get("payload") if isinstance(data.get("payload"), dict) else {}

    def text(*keys: str, limit: int) -> str | None:
        for key in keys:
            value = data.get(key, payload.get(key))
            if isinstance(value, str) and value:
                return _storable(value[:limit])
        return None

    return {
        "event_id": text("id", "event_id", limit=64),
        "type": text("type", "event", limit=40),
        "transaction_id": text("transaction_id", limit=19),
    }


async def _log(
    provider: str,
    raw: bytes,
    signature: str | None,
    signature_valid: bool,
    status: int,
    result: str,
) -> None:
    try:
        await _entry(provider, raw, signature, signature_valid, status, result).save()
    except Exception:  # the answer to the gateway matters more than our log of it
        log.exception("could not log a webhook (answered %s)", status)


def _entry(
    provider: str,
    raw: bytes,
    signature: str | None,
    signature_valid: bool,
    status: int,
    result: str,
) -> WebhookLog:
    """The log entry of one event and our answer to it, not yet saved."""
    return WebhookLog(
        provider=provider,
        signature_valid=signature_valid,
        status_code=status,
        result=clip(str(result)),
        body=_storable(raw[:LOG_BODY_LIMIT].decode("utf-8", errors="replace")),
        signature=_storable(signature[:1000]) if signature else None,
        **_fields(raw),
    )
