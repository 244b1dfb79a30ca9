"""A gateway's event in RailServe's format: its fields, and how a delivery is verified and read.

A provider with a format of its own verifies its deliveries and translates them
(`read_webhook`); the result is checked here like any RailServe event.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass

from railserve.bounds import REFUND_ID, TRANSACTION_ID
from railserve.config import Settings
from railserve.errors import BadRequest, BadSignature
from railserve.payment.providers.router import Gateways
from railserve.payment.signature import verify

EVENT_TYPES = ("payment.succeeded", "payment.failed", "refund.succeeded", "refund.failed")
REFUND_EVENTS = ("refund.succeeded", "refund.failed")
EVENT_ID = re.compile(r"evt_[A-Za-z0-9_-]{1,60}")


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
