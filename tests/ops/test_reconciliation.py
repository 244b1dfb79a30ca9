"""The gateway's ledger beside the database: each kind of difference, planted, is found;
`railserve reconcile` prints the same and exits 1, or 0 when they agree."""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime, timedelta

import pytest

from railserve.ops.reconciliation import differences
from railserve.payment.models import Actor, PaymentStatus, Refund, RefundStatus
from railserve.payment.providers.models import SimulatedCharge, SimulatedRefund
from tests.ops import seed
from tests.support.server import railserve

PAST = datetime.now(UTC) - timedelta(minutes=1)


async def _attempt(status: PaymentStatus, *, charged: bool | None, amount: int = 125000, **charge):
    """An attempt and, unless `charged` is None, the gateway's record of its charge."""
    owner = await seed.user(f"r-{secrets.token_hex(4)}@example.com")
    payment = await seed.payment(owner, await seed.booking(owner), status=status, amount=amount)
    if charged is not None:
        await SimulatedCharge.create(
            transaction_id=payment.transaction_id,
            amount=charge.pop("charge_amount", amount),
            currency="INR",
            succeeded=charged,
            settles_at=charge.pop("settles_at", PAST),
            **charge,
        )
    return payment


async def _refund(payment, amount: int, status: RefundStatus) -> Refund:
    return await Refund.create(
        refund_id="RFD" + secrets.token_hex(8).upper(),
        payment_id=payment.id,
        amount=amount,
        actor=Actor.OPERATOR,
        status=status,
    )


async def _gateway_refund(payment, refund_id: str, amount: int) -> None:
    await SimulatedRefund.create(
        key=f"{refund_id}:1",
        refund_id=refund_id,
        attempt=1,
        transaction_id=payment.transaction_id,
        amount=amount,
        currency="INR",
        succeeded=True,
        reference="REF" + secrets.token_hex(4),
        settles_at=PAST,
    )


async def _agreeing_ledger() -> None:
    """Attempts on which both sides agree, or that are still in flight."""
    ok = await _attempt(PaymentStatus.SUCCESS, charged=True)
    refund = await _refund(ok, 50000, RefundStatus.SUCCEEDED)
    await _gateway_refund(ok, refund.refund_id, 50000)
    await _refund(ok, 10000, RefundStatus.PENDING)  # in flight
    await _attempt(PaymentStatus.FAILED, charged=False)
    # A success that came after the attempt was cancelled, returned in full by a refund.
    returned = await _attempt(PaymentStatus.CANCELLED, charged=True)
    refund = await _refund(returned, 125000, RefundStatus.SUCCEEDED)
    await _gateway_refund(returned, refund.refund_id, 125000)
    await _attempt(
        PaymentStatus.PENDING, charged=True, settles_at=datetime.now(UTC) + timedelta(hours=1)
    )
    await _attempt(PaymentStatus.CANCELLED, charged=None)


async def test_an_agreeing_ledger_has_no_differences(app):
    await _agreeing_ledger()
    assert await differences() == []


@pytest.fixture
async def planted(app) -> dict[str, tuple[str, str]]:
    """One of each difference; maps a name to (kind, transaction id)."""
    await _agreeing_ledger()
    failed = await _attempt(PaymentStatus.FAILED, charged=True)
    pending = await _attempt(PaymentStatus.PENDING, charged=True)
    no_charge = await _attempt(PaymentStatus.SUCCESS, charged=None)
    declined = await _attempt(PaymentStatus.SUCCESS, charged=False)
    amount = await _attempt(PaymentStatus.SUCCESS, charged=True, charge_amount=120000)
    ours = await _attempt(PaymentStatus.PARTIALLY_REFUNDED, charged=True)
    await _refund(ours, 30000, RefundStatus.SUCCEEDED)
    theirs = await _attempt(PaymentStatus.SUCCESS, charged=True)
    await _gateway_refund(theirs, "RFD" + "9" * 16, 20000)
    refund_amount = await _attempt(PaymentStatus.PARTIALLY_REFUNDED, charged=True)
    differing = await _refund(refund_amount, 40000, RefundStatus.SUCCEEDED)
    await _gateway_refund(refund_amount, differing.refund_id, 45000)
    return {
        "failed but captured": ("captured_not_shown", failed.transaction_id),
        "pending but captured": ("captured_not_shown", pending.transaction_id),
        "success without a charge": ("missing_capture", no_charge.transaction_id),
        "success the gateway declined": ("missing_capture", declined.transaction_id),
        "charge amount differs": ("amount", amount.transaction_id),
        "refund only ours": ("refund_only_ours", ours.transaction_id),
        "refund only the gateway's": ("refund_only_gateway", theirs.transaction_id),
        "refund amount differs": ("amount", refund_amount.transaction_id),
    }


async def test_each_planted_difference_is_found_once(planted):
    found = sorted((d.kind, d.transaction_id) for d in await differences())
    assert found == sorted(planted.values())


async def test_the_page_lists_and_links_each_difference(operator, planted):
    html = await operator.text("/ops/reconciliation")
    assert "8 differences" in html
    for _kind, txn in planted.values():
        assert f'href="/ops/payments/{txn}"' in html


async def test_the_page_says_when_they_agree(operator):
    assert 'id="no-differences"' in await operator.text("/ops/reconciliation")


@pytest.fixture
def env(database_url):
    return {**os.environ, "RAILSERVE_DATABASE_URL": database_url, "RAILSERVE_ENV": "development"}


async def test_railserve_reconcile_exits_0_when_clean_and_1_naming_each_difference(
    app, env, planted
):
    result = railserve("reconcile", env=env)
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("DIFFERENCE")]
    assert len(lines) == len(planted)
    for kind, txn in planted.values():
        assert any(kind in line and txn in line for line in lines)


async def test_railserve_reconcile_exits_0_on_an_agreeing_ledger(app, env):
    await _agreeing_ledger()
    result = railserve("reconcile", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "agree" in result.stdout
