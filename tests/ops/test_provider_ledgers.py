"""A third provider, registered here, is reconciled through its own `ledger`: its books are
a list in memory, so reconciliation, `railserve check` and the console can only learn of
them by asking it through the `Gateway` protocol."""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from railserve.invariants import violations
from railserve.ops.reconciliation import differences
from railserve.payment import providers
from railserve.payment.models import Actor, PaymentStatus, Refund, RefundStatus
from tests.ops import seed
from tests.ops.conftest import make_operator

PAST = datetime.now(UTC) - timedelta(minutes=1)


class PaperGateway:
    """Keeps its books on paper (a list): no table of its own anywhere."""

    methods = frozenset({"wallet"})

    def __init__(self, settings, deliver) -> None:
        self.books: list[providers.LedgerEntry] = []
        self.asked: list[datetime | None] = []

    async def charge(self, request: providers.ChargeRequest) -> None:
        raise providers.GatewayError()

    async def query(self, transaction_id: str) -> providers.ChargeStatus:
        return providers.ChargeStatus("unknown")

    async def refund(self, request: providers.RefundRequest) -> providers.RefundResult:
        return providers.RefundResult(False, reason="paper refunds nothing")

    async def query_refund(self, refund_id: str) -> providers.RefundState:
        return providers.RefundState("unknown")

    async def ledger(self, since: datetime | None = None) -> list[providers.LedgerEntry]:
        self.asked.append(since)
        return list(self.books)

    async def aclose(self) -> None:
        return None


providers.register("paper", PaperGateway)


@pytest.fixture
def settings(settings):
    return replace(
        settings, gateways="simulated,simupi,paper", gateway_routes="wallet=paper,upi=simupi"
    )


def paper_of(app) -> PaperGateway:
    return app.extensions["railserve.gateways"].providers["paper"]


def charge(txn: str, amount: int = 125000) -> providers.LedgerEntry:
    return providers.LedgerEntry(txn, amount, "INR", "succeeded", PAST)


def refund(txn: str, refund_id: str, amount: int) -> providers.LedgerEntry:
    return providers.LedgerEntry(txn, amount, "INR", "succeeded", PAST, refund_id, 1)


async def paper_payment(**fields):
    owner = await seed.user(f"paper-{secrets.token_hex(4)}@example.com")
    held = await seed.booking(owner)
    return await seed.payment(owner, held, gateway="paper", method="wallet", **fields)


@pytest.fixture
async def planted(app) -> dict[str, tuple[str, str]]:
    """On paper: an agreeing charge and refund, and one of three differences."""
    books = paper_of(app).books
    agreeing = await paper_payment(status=PaymentStatus.PARTIALLY_REFUNDED)
    ours = await Refund.create(
        refund_id="RFD" + secrets.token_hex(8).upper(),
        payment_id=agreeing.id,
        amount=25000,
        actor=Actor.OPERATOR,
        status=RefundStatus.SUCCEEDED,
    )
    await agreeing.__class__.filter(id=agreeing.id).update(refunded_amount=25000)
    books += [
        charge(agreeing.transaction_id),
        refund(agreeing.transaction_id, ours.refund_id, 25000),
    ]
    amount = await paper_payment()
    books.append(charge(amount.transaction_id, 120000))
    missing = await paper_payment()  # shown as paid; no charge on paper
    theirs = await paper_payment()
    books += [charge(theirs.transaction_id), refund(theirs.transaction_id, "RFD" + "7" * 16, 5000)]
    return {
        "amount": ("amount", amount.transaction_id),
        "missing": ("missing_capture", missing.transaction_id),
        "theirs": ("refund_only_gateway", theirs.transaction_id),
    }


async def test_reconciliation_asks_the_third_provider_for_its_ledger(app, planted):
    found = sorted((d.kind, d.transaction_id) for d in await differences())
    assert found == sorted(planted.values())
    assert paper_of(app).asked  # asked, not read from a table


async def test_the_console_lists_what_the_third_providers_ledger_says(app, planted):
    operator = await make_operator(app)
    html = await operator.text("/ops/reconciliation")
    assert f"{len(planted)} differences" in html
    for _kind, txn in planted.values():
        assert f'href="/ops/payments/{txn}"' in html


async def test_check_compares_refunds_with_the_third_providers_ledger(app, planted):
    problems = await violations(app.extensions["railserve.gateways"])
    assert f"the gateway refunded {'RFD' + '7' * 16}, which we have no record of" in problems
    paper_of(app).books.clear()
    assert any("is succeeded but the gateway did not pay it" in p for p in await violations())
