"""The gateway's ledger beside ours: every place where the two tell different stories.

Each provider keeps its own ledger and hands it out through the `Gateway` protocol
(`ledger`: its charges and refund attempts); nothing here knows how or where it keeps
them. `differences()` compares every configured provider's with our payments and refunds;
the console shows the list and `railserve reconcile` prints it (exit 1 when not empty).
Charges still inside their settlement delay and refunds still pending are in flight,
not differences.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

from railserve.display import format_money
from railserve.payment.models import (
    Payment,
    PaymentStatus,
    Refund,
    RefundStatus,
)
from railserve.payment.providers import LedgerEntry
from railserve.payment.providers.router import Gateways, configured

CAPTURED = PaymentStatus.CAPTURED
NOT_CAPTURED = PaymentStatus.NOT_CAPTURED


@dataclass(frozen=True)
class Difference:
    kind: str  # captured_not_shown | missing_capture | refund_only_ours | refund_only_gateway | amount
    transaction_id: str
    message: str
    refund_id: str | None = None

    def __str__(self) -> str:
        where = f" refund {self.refund_id}" if self.refund_id else ""
        return f"{self.kind}: {self.transaction_id}{where}: {self.message}"


async def differences(
    now: datetime | None = None, gateways: Gateways | None = None
) -> list[Difference]:
    """Every difference between the configured providers' ledgers and the database."""
    now = now or datetime.now(UTC)
    found: list[Difference] = []
    entries = await configured(gateways).ledger()
    charges = {e.transaction_id: e for e in entries if e.refund_id is None}
    gateway_refunds = [e for e in entries if e.refund_id is not None and e.succeeded]
    refunded_by_gateway: dict[str, int] = defaultdict(int)
    for entry in gateway_refunds:
        refunded_by_gateway[entry.transaction_id] += entry.amount
    payments = await Payment.all().values(
        "id", "transaction_id", "status", "amount", "currency", "gateway"
    )
    for payment in payments:
        found.extend(
            _compare_charge(
                payment,
                charges.get(payment["transaction_id"]),
                now,
                refunded_by_gateway[payment["transaction_id"]],
            )
        )
    found.extend(await _compare_refunds(gateway_refunds))
    return found


def _compare_charge(payment: dict, charge: LedgerEntry | None, now: datetime, refunded: int):
    txn, status = payment["transaction_id"], PaymentStatus(payment["status"])
    money = format_money(payment["amount"], payment["currency"])
    if charge is None:
        if status in CAPTURED:
            yield Difference(
                "missing_capture", txn, f"we show {status} ({money}); the gateway has no charge"
            )
        return
    settled = charge.settled(now)
    if (charge.amount, charge.currency) != (payment["amount"], payment["currency"]):
        theirs = format_money(charge.amount, charge.currency)
        yield Difference("amount", txn, f"we charged {money}; the gateway has {theirs}")
    if status in CAPTURED and settled and not charge.succeeded:
        yield Difference(
            "missing_capture", txn, f"we show {status} ({money}); the gateway's charge failed"
        )
    if status in NOT_CAPTURED and charge.succeeded and settled:
        kept = charge.amount - refunded
        if kept > 0:
            yield Difference(
                "captured_not_shown",
                txn,
                f"the gateway captured {format_money(kept, charge.currency)} "
                f"on an attempt we show as {status}",
            )


@dataclass(frozen=True)
class OfflineSettlement:
    """A refund an operator recorded as returned outside the gateway: not a difference."""

    transaction_id: str
    refund_id: str
    amount: str
    reference: str
    settled_at: datetime | None


async def offline_settlements() -> list[OfflineSettlement]:
    rows = await (
        Refund.filter(offline_reference__isnull=False)
        .order_by("-settled_at")
        .values(
            "refund_id",
            "amount",
            "currency",
            "offline_reference",
            "settled_at",
            transaction_id="payment__transaction_id",
        )
    )
    return [
        OfflineSettlement(
            row["transaction_id"],
            row["refund_id"],
            format_money(row["amount"], row["currency"]),
            row["offline_reference"],
            row["settled_at"],
        )
        for row in rows
    ]


async def _compare_refunds(gateway_refunds: list[LedgerEntry]) -> list[Difference]:
    found: list[Difference] = []
    by_refund = {entry.refund_id: entry for entry in gateway_refunds}
    ours = await Refund.all().values(
        "refund_id",
        "status",
        "amount",
        "currency",
        "offline_reference",
        transaction_id="payment__transaction_id",
    )
    known = set()
    for refund in ours:
        known.add(refund["refund_id"])
        theirs = by_refund.get(refund["refund_id"])
        money = format_money(refund["amount"], refund["currency"])
        if refund["offline_reference"] is not None and theirs is None:
            continue  # settled outside the gateway: listed apart
        if refund["status"] == RefundStatus.SUCCEEDED and theirs is None:
            found.append(
                Difference(
                    "refund_only_ours",
                    refund["transaction_id"],
                    f"we show a refund of {money} as succeeded; the gateway made none",
                    refund["refund_id"],
                )
            )
        elif theirs is not None and refund["status"] == RefundStatus.FAILED:
            found.append(
                Difference(
                    "refund_only_gateway",
                    refund["transaction_id"],
                    f"we show this refund as failed; the gateway paid "
                    f"{format_money(theirs.amount, theirs.currency)}",
                    refund["refund_id"],
                )
            )
        elif theirs is not None and theirs.amount != refund["amount"]:
            found.append(
                Difference(
                    "amount",
                    refund["transaction_id"],
                    f"we refunded {money}; the gateway paid "
                    f"{format_money(theirs.amount, theirs.currency)}",
                    refund["refund_id"],
                )
            )
    for refund_id, theirs in by_refund.items():
        if refund_id not in known:
            found.append(
                Difference(
                    "refund_only_gateway",
                    theirs.transaction_id,
                    f"the gateway paid a refund of "
                    f"{format_money(theirs.amount, theirs.currency)} we have no record of",
                    refund_id,
                )
            )
    return found
