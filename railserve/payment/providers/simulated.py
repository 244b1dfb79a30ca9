"""A simulated gateway that behaves like a real one.

It keeps its own ledger, answers after a delay through the signed webhook, and decides
each random outcome as a pure function of the seed and the transaction id, so that a
question asked again after a restart gets the same answer.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tortoise.exceptions import IntegrityError

from railserve import batch, db
from railserve.money import format_amount
from railserve.payment import providers
from railserve.payment.providers import ledger
from railserve.payment.providers.models import SimulatedCharge, SimulatedRefund
from railserve.payment.signature import sign


@dataclass(frozen=True)
class Outcome:
    succeeded: bool
    code: str | None = None

    @property
    def reason(self) -> str | None:
        return FAILURES[self.code][0] if self.code else None

    @property
    def retryable(self) -> bool | None:
        return FAILURES[self.code][1] if self.code else None


# Customer-safe reason, and whether trying again (perhaps another way) can help.
FAILURES: dict[str, tuple[str, bool]] = {
    "card_declined": ("Card declined", True),
    "insufficient_funds": ("Insufficient funds", True),
    "bank_declined": ("Declined by bank", True),
    "issuer_unavailable": ("The bank did not respond in time", True),
}
RANDOM_FAILURES = ("bank_declined", "issuer_unavailable")
SUCCESS = Outcome(True)

CARD_TRIGGERS = {
    "4242424242424242": SUCCESS,
    "4000000000000002": Outcome(False, "card_declined"),
    "4000000000009995": Outcome(False, "insufficient_funds"),
    "4000000000000341": SUCCESS,  # charged; every refund of it is refused
}
REFUSES_REFUNDS = {"4000000000000341"}
ACCOUNT_CLOSED = "Card account closed"
UPI_TRIGGERS = {"success@upi": SUCCESS, "failure@upi": Outcome(False, "bank_declined")}

# Shown on the payment page in test mode.
TEST_TRIGGERS = (
    ("Card", "4242 4242 4242 4242", "success"),
    ("Card", "4000 0000 0000 0002", "failed: card declined"),
    ("Card", "4000 0000 0000 9995", "failed: insufficient funds"),
    ("Card", "4000 0000 0000 0341", "success; its refunds are refused"),
    ("Card", "4000 0000 0000 0119", "failed: processing error (nothing charged)"),
    ("UPI", "success@upi", "success"),
    ("UPI", "failure@upi", "failed: declined by bank"),
    ("Any other valid instrument", "—", "random by success rate"),
)


def trigger_for(method: str, instrument: Mapping[str, str]) -> Outcome | None:
    fields = dict(instrument)
    if method in ("credit_card", "debit_card"):
        digits = "".join(ch for ch in fields.get("card_number", "") if ch.isdigit())
        return CARD_TRIGGERS.get(digits)
    if method == "upi":
        return UPI_TRIGGERS.get(fields.get("upi_id", "").strip().lower())
    return None


def refuses_refunds(method: str, instrument: Mapping[str, str]) -> bool:
    if method not in ("credit_card", "debit_card"):
        return False
    digits = "".join(ch for ch in dict(instrument).get("card_number", "") if ch.isdigit())
    return digits in REFUSES_REFUNDS


def random_outcome(seed: str, transaction_id: str, success_rate: float) -> Outcome:
    """The same seed and transaction id always give the same outcome."""
    digest = hmac.new(seed.encode(), transaction_id.encode(), hashlib.sha256).digest()
    draw = int.from_bytes(digest[:8], "big") / 2**64
    if draw < success_rate:
        return SUCCESS
    return Outcome(False, RANDOM_FAILURES[digest[8] % len(RANDOM_FAILURES)])


# The gateway itself fails to process the charge: its charge call errors, nothing is
# charged, and the error counts against its circuit breaker.
PROCESSING_ERROR_CARD = "4000000000000119"
PROCESSING_ERROR = "Processing error at the payment gateway: nothing was charged"


def card_digits(instrument: Mapping[str, str]) -> str:
    return "".join(ch for ch in dict(instrument).get("card_number", "") if ch.isdigit())


class SimulatedGateway(ledger.Simulator):
    name = "simulated"
    methods = providers.ALL_METHODS
    failures = FAILURES
    default_failure = "bank_declined"

    def outcome(self, request: providers.ChargeRequest) -> Outcome:
        return trigger_for(request.method, request.instrument) or random_outcome(
            self.settings.gateway_seed, request.transaction_id, self.settings.gateway_success_rate
        )

    def test_triggers(self) -> tuple[providers.TestTrigger, ...]:
        return TEST_TRIGGERS

    def sign(self, body: bytes) -> str:
        return sign(self.settings.webhook_secrets[0], body, int(time.time()))

    def ledger_row(self, request: providers.ChargeRequest) -> SimulatedCharge | None:
        """The charge as this gateway books it (None: a processing error, nothing booked)."""
        if card_digits(request.instrument) == PROCESSING_ERROR_CARD:
            return None
        return self._booked(request, self.outcome(request))

    def _booked(self, request: providers.ChargeRequest, outcome: Outcome) -> SimulatedCharge:
        return SimulatedCharge(
            transaction_id=request.transaction_id,
            amount=request.amount,
            currency=request.currency,
            succeeded=outcome.succeeded,
            failure_code=outcome.code,
            settles_at=datetime.now(UTC) + timedelta(seconds=self.settings.gateway_delay),
            refunds_refused=refuses_refunds(request.method, request.instrument),
        )

    async def charge(self, request: providers.ChargeRequest) -> None:
        if card_digits(request.instrument) == PROCESSING_ERROR_CARD:
            raise providers.GatewayError(PROCESSING_ERROR)
        outcome = self.outcome(request)  # the same verdict its ledger row was booked with
        if not request.recorded:
            charge = self._booked(request, outcome)
            with contextlib.suppress(IntegrityError):  # the same charge sent twice is one
                if db.sqlite_in_use():  # committed with whatever else waits for the connection
                    row = batch.Insert(charge)
                    # The gateway's own record: made durable by the settlement that follows
                    # it (railserve/batch.py), so its COMMIT does not wait for the disk.
                    await batch.run(lambda unit: unit.insert(row), durable=False)
                else:
                    await charge.save(force_create=True)
        body = event_body(request.transaction_id, request.amount, request.currency, outcome)
        self.spawn(self.report_later(body, request.transaction_id))

    async def refund(self, request: providers.RefundRequest) -> providers.RefundResult:
        """Take a refund like a real provider: answer at once, report through the webhook."""
        charge = await self.charge_record(request.transaction_id)
        result, record = await ledger.take_refund(
            request,
            charge,
            provider=self.name,
            delay=self.settings.gateway_delay,
            reference_prefix="GRF",
            no_charge="The gateway has no successful charge to refund",
            excess="The refund exceeds what was charged",
            refused_reason=ACCOUNT_CLOSED if charge and charge.refunds_refused else None,
        )
        if record is not None:
            self.spawn(self.report_later(refund_event_body(record), record.refund_id))
        return result


def event_body(transaction_id: str, amount: int, currency: str, outcome: Outcome) -> bytes:
    event = {
        "id": "evt_" + secrets.token_hex(12),
        "type": "payment.succeeded" if outcome.succeeded else "payment.failed",
        "transaction_id": transaction_id,
        "amount": format_amount(amount, currency),
        "currency": currency,
        "failure_reason": outcome.reason,
        "retryable": outcome.retryable,
        "created": int(time.time()),
    }
    return json.dumps(event).encode()


def refund_event_body(record: SimulatedRefund) -> bytes:
    event = {
        "id": "evt_" + secrets.token_hex(12),
        "type": "refund.succeeded" if record.succeeded else "refund.failed",
        "transaction_id": record.transaction_id,
        "refund_id": record.refund_id,
        "amount": format_amount(record.amount, record.currency),
        "currency": record.currency,
        "failure_reason": record.failure_reason,
        "reference": record.reference,
        "created": int(time.time()),
    }
    return json.dumps(event).encode()


providers.register("simulated", SimulatedGateway)
