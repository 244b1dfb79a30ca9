"""The operators' log of every event received: `handle`, and one row with our answer.

Every delivery comes in through `handle_logged`, whatever the answer (applied, refused,
a bad signature, an error of ours); operators read the rows and replay a stored event
(railserve/ops/actions.py), judged by `signature_holds` and `signed_at`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from railserve import running
from railserve.bounds import clip
from railserve.config import Settings
from railserve.errors import BadSignature, DomainError
from railserve.payment.models import WebhookLog
from railserve.payment.providers.router import Gateways
from railserve.payment.signature import verify
from railserve.payment.webhook.handler import handle
from railserve.store import compat

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
        if not compat.is_saved(receipt):
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
