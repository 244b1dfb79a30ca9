"""What the two simulators share: their ledger, and the gateway they are built on.

A real provider keeps its own books; our two simulators share the `simulated_charges` and
`simulated_refunds` tables (one row per charge; one per refund attempt, keyed by refund id
and attempt), each reading only its own rows (`provider`). `Simulator` answers queries
about charges and refunds, hands out the ledger, runs the background reports and closes;
each simulator adds how it decides and how it reports.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Mapping
from datetime import UTC, datetime, timedelta

from tortoise.exceptions import IntegrityError

from railserve.config import Settings
from railserve.payment import providers
from railserve.payment.providers.models import SimulatedCharge, SimulatedRefund

log = logging.getLogger(__name__)


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


LEDGER_FIELDS = ("transaction_id", "amount", "currency", "succeeded", "settles_at")


class Simulator:
    """The part of a simulated gateway that does not depend on its flavour.

    Subclasses set `name` (the `provider` of their ledger rows), `failures` (failure code:
    customer-safe reason, retryable) and `default_failure`, and implement `charge` and
    `refund` and `sign`."""

    name: str
    failures: Mapping[str, tuple[str, bool]]
    default_failure: str

    def __init__(self, settings: Settings, deliver: providers.Deliver) -> None:
        self.settings = settings
        self.deliver = deliver
        self._tasks: set[asyncio.Task[None]] = set()

    async def charge_record(self, transaction_id: str) -> SimulatedCharge | None:
        return await SimulatedCharge.get_or_none(transaction_id=transaction_id, provider=self.name)

    async def query(self, transaction_id: str) -> providers.ChargeStatus:
        charge = await self.charge_record(transaction_id)
        if charge is None:
            return providers.ChargeStatus("unknown")
        if charge.settles_at > datetime.now(UTC):
            return providers.ChargeStatus("pending")
        if charge.succeeded:
            return providers.ChargeStatus("succeeded")
        reason, retryable = self.failures[charge.failure_code or self.default_failure]
        return providers.ChargeStatus("failed", reason, retryable)

    async def query_refund(self, refund_id: str) -> providers.RefundState:
        return await refund_state(refund_id, self.name)

    async def ledger(self, since: datetime | None = None) -> list[providers.LedgerEntry]:
        """Its charges, then its refund attempts in attempt order."""
        entries: list[providers.LedgerEntry] = []
        for model, extra, order in (
            (SimulatedCharge, (), "created_at"),
            (SimulatedRefund, ("refund_id", "attempt"), "attempt"),
        ):
            rows = model.filter(provider=self.name)
            if since is not None:
                rows = rows.filter(created_at__gte=since)
            for row in await rows.order_by(order, "created_at").values(*LEDGER_FIELDS, *extra):
                status = "succeeded" if row.pop("succeeded") else "failed"
                entries.append(providers.LedgerEntry(status=status, **row))
        return entries

    def sign(self, body: bytes) -> str:
        """The signature header's value for a report (each simulator signs its own way)."""
        raise NotImplementedError

    async def report_later(self, body: bytes, what: str) -> None:
        """Deliver a report, signed when sent, after the gateway's delay; the sweeper
        reconciles what was not delivered."""
        await asyncio.sleep(self.settings.gateway_delay)
        try:
            await self.deliver(body, self.sign(body))
        except Exception:
            log.exception("%s webhook delivery failed for %s", self.name, what)

    def spawn(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Let reports already due finish; the sweeper reconciles any cut short."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=2)
        for task in set(self._tasks):
            task.cancel()
