"""SimUPI: a second simulator, shaped like a UPI collect flow with its own webhook format.

A collect request goes to the payer's UPI app; the payer approves or declines it there and
the provider reports `collect.approved` or `collect.declined` to
POST /payment/webhook/simupi, signed with `X-SimUPI-Signature: <hex HMAC-SHA256 of the raw
body>` under RAILSERVE_SIMUPI_WEBHOOK_SECRET (a comma-separated list: the first signs,
any verifies). Refunds are answered at once and reported as `refund.processed`. Like the
first simulator it keeps a ledger (the simulated_* tables, provider "simupi"), honours
the UPI test triggers, the success rate and the delay, and decides random outcomes as a
pure function of the seed and the transaction id.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from tortoise.exceptions import IntegrityError

from railserve.errors import BadRequest, BadSignature
from railserve.money import format_amount
from railserve.payment import providers
from railserve.payment.providers import ledger
from railserve.payment.providers.models import SimulatedCharge, SimulatedRefund

NAME = "simupi"
SIGNATURE_HEADER = "X-SimUPI-Signature"
EVENT_ID = re.compile(r"[A-Za-z0-9_-]{1,40}")
# Customer-safe reason, and whether trying again can help.
FAILURES: dict[str, tuple[str, bool]] = {
    "bank_declined": ("Declined by bank", True),
    "collect_expired": ("The UPI collect request expired before it was approved", True),
}
TRIGGERS = {"success@upi": None, "failure@upi": "bank_declined"}
TEST_TRIGGERS = (
    ("UPI", "success@upi", "success"),
    ("UPI", "failure@upi", "failed: declined by bank"),
)
EVENTS = {
    "collect.approved": "payment.succeeded",
    "collect.declined": "payment.failed",
}


def decide(seed: str, transaction_id: str, success_rate: float) -> str | None:
    """None for approval, else a failure code; the same inputs always decide the same."""
    key = f"{NAME}:{seed}".encode()
    digest = hmac.new(key, transaction_id.encode(), hashlib.sha256).digest()
    if int.from_bytes(digest[:8], "big") / 2**64 < success_rate:
        return None
    return tuple(FAILURES)[digest[8] % len(FAILURES)]


def signature(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(header: str | None, body: bytes, keys: Sequence[str]) -> bool:
    """True when the header is the body's HMAC under one of the keys (rotation)."""
    if not header or len(header) > 200:
        return False
    matched = False
    for key in keys:
        if key:  # compare with every key, in constant time; never stop at a match
            matched |= hmac.compare_digest(header.strip().encode(), signature(key, body).encode())
    return matched


class SimUPIGateway(ledger.Simulator):
    name = NAME
    methods = frozenset({"upi"})
    signature_header = SIGNATURE_HEADER
    failures = FAILURES
    default_failure = "bank_declined"

    def test_triggers(self) -> Sequence[providers.TestTrigger]:
        return TEST_TRIGGERS

    def sign(self, body: bytes) -> str:
        return signature(self.settings.simupi_webhook_secrets[0], body)

    def decide(self, request: providers.ChargeRequest) -> str | None:
        upi_id = dict(request.instrument).get("upi_id", "").strip().lower()
        if upi_id in TRIGGERS:
            return TRIGGERS[upi_id]
        return decide(
            self.settings.gateway_seed, request.transaction_id, self.settings.gateway_success_rate
        )

    def ledger_row(self, request: providers.ChargeRequest) -> SimulatedCharge:
        """The collect request as this gateway books it."""
        code = self.decide(request)
        return SimulatedCharge(
            transaction_id=request.transaction_id,
            provider=NAME,
            amount=request.amount,
            currency=request.currency,
            succeeded=code is None,
            failure_code=code,
            settles_at=datetime.now(UTC) + timedelta(seconds=self.settings.gateway_delay),
        )

    async def charge(self, request: providers.ChargeRequest) -> None:
        """Send the collect request; the payer's answer comes back through the webhook."""
        charge = self.ledger_row(request)
        if not request.recorded:
            with contextlib.suppress(IntegrityError):  # the same collect sent twice is one
                await charge.save(force_create=True)
            charge = await SimulatedCharge.get(transaction_id=request.transaction_id)
        self.spawn(self.report_later(collect_event(charge), request.transaction_id))

    async def refund(self, request: providers.RefundRequest) -> providers.RefundResult:
        """Take a refund: answer at once with a reference, report `refund.processed` later."""
        result, record = await ledger.take_refund(
            request,
            await self.charge_record(request.transaction_id),
            provider=NAME,
            delay=self.settings.gateway_delay,
            reference_prefix="UPIR",
            no_charge="No approved collect to refund",
            excess="The refund exceeds what was collected",
        )
        if record is not None:
            self.spawn(self.report_later(refund_event(record), record.refund_id))
        return result

    def read_webhook(self, raw: bytes, header: str | None) -> dict:
        """Verify a SimUPI event and return it in RailServe's event format."""
        if not verify(header, raw, self.settings.simupi_webhook_secrets):
            raise BadSignature("Missing or invalid X-SimUPI-Signature.")
        return translate(raw)


def _envelope(event: str, payload: dict) -> bytes:
    payload = {"event_id": "sue_" + secrets.token_hex(12), **payload, "created": int(time.time())}
    return json.dumps({"event": event, "payload": payload}).encode()


def collect_event(charge: SimulatedCharge) -> bytes:
    reason = FAILURES[charge.failure_code][0] if charge.failure_code else None
    return _envelope(
        "collect.approved" if charge.succeeded else "collect.declined",
        {
            "transaction_id": charge.transaction_id,
            "amount": format_amount(charge.amount, charge.currency),
            "currency": charge.currency,
            "reason": reason,
            "reference": "UPI" + charge.transaction_id[-12:],
        },
    )


def refund_event(record: SimulatedRefund) -> bytes:
    return _envelope(
        "refund.processed",
        {
            "transaction_id": record.transaction_id,
            "refund_id": record.refund_id,
            "amount": format_amount(record.amount, record.currency),
            "currency": record.currency,
            "status": "succeeded" if record.succeeded else "failed",
            "reason": record.failure_reason,
            "reference": record.reference,
        },
    )


def translate(raw: bytes) -> dict:
    """A SimUPI body as a RailServe event (railserve/payment/webhook/event.py checks the rest)."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("The body is not JSON.") from None
    if not isinstance(data, dict) or not isinstance(data.get("payload"), dict):
        raise BadRequest('The body must be {"event": ..., "payload": {...}}.')
    kind, payload = data.get("event"), data["payload"]
    event_id = payload.get("event_id")
    if not (isinstance(event_id, str) and EVENT_ID.fullmatch(event_id)):
        raise BadRequest("payload.event_id is missing or malformed.")
    if kind == "refund.processed":
        status = payload.get("status")
        if status not in ("succeeded", "failed"):
            raise BadRequest("payload.status must be succeeded or failed.")
        kind = f"refund.{status}"
    elif kind in EVENTS:
        kind = EVENTS[kind]
    else:
        raise BadRequest(
            "Unknown event; expected collect.approved, collect.declined or refund.processed."
        )
    reason = payload.get("reason")
    return {
        "id": f"evt_{NAME}_{event_id}",
        "type": kind,
        "transaction_id": payload.get("transaction_id"),
        "refund_id": payload.get("refund_id"),
        "amount": payload.get("amount"),
        "currency": payload.get("currency"),
        "failure_reason": reason,
        "retryable": True if kind == "payment.failed" else None,
        "reference": payload.get("reference"),
        "created": payload.get("created"),
    }


providers.register(NAME, SimUPIGateway)
