"""The operator's actions on an attempt: cancel, reconcile, refund — each with a reason."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from railserve.payment.models import (
    Actor,
    OperatorAction,
    Payment,
    PaymentEvent,
    PaymentStatus,
    Refund,
)
from railserve.payment.providers.models import SimulatedCharge
from tests.ops import seed
from tests.support.passenger import JSON


@pytest.fixture
async def pending(app) -> Payment:
    owner = await seed.user("pending@example.com")
    return await seed.payment(owner, await seed.booking(owner), status=PaymentStatus.PENDING)


async def _state(payment: Payment) -> tuple:
    fresh = await Payment.get(id=payment.id)
    return (
        fresh.status,
        fresh.refunded_amount,
        await PaymentEvent.filter(payment_id=payment.id).count(),
        await OperatorAction.exclude(action__endswith=" refused").count(),
        await Refund.all().count(),
    )


async def test_cancel_a_pending_attempt(operator, pending):
    path = f"/ops/payments/{pending.transaction_id}"
    response = await operator.post(f"{path}/cancel", {"reason": "passenger phoned: stuck"})
    assert response.status_code == 303
    assert response.headers["Location"] == path
    page = await operator.text(path)
    assert f"Attempt {pending.transaction_id} cancelled." in page
    payment = await Payment.get(id=pending.id)
    assert (payment.status, payment.failure_reason) == (
        PaymentStatus.CANCELLED,
        "passenger phoned: stuck",
    )
    last = await PaymentEvent.filter(payment_id=pending.id).order_by("-id").first()
    assert (last.event, last.actor, last.to_status) == ("cancel", Actor.OPERATOR, "cancelled")
    action = await OperatorAction.get(transaction_id=pending.transaction_id)
    assert (action.action, action.reason, action.operator_id) == (
        "cancel",
        "passenger phoned: stuck",
        operator.user_id,
    )


async def test_cancel_is_409_unless_pending(operator, paid):
    payment = await Payment.get(transaction_id=paid)
    before = await _state(payment)
    response = await operator.post(f"/ops/payments/{paid}/cancel", {"reason": "try anyway"})
    assert response.status_code == 409
    assert "Only a pending attempt" in await response.get_data(as_text=True)
    assert await _state(payment) == before


@pytest.mark.parametrize("reason", ["", "  ", "ab", "x" * 301, "nul\x00byte"])
@pytest.mark.parametrize("action", ["cancel", "reconcile", "refund"])
async def test_every_action_needs_a_reason_of_3_to_300_characters(
    operator, pending, action, reason
):
    before = await _state(pending)
    path = f"/ops/payments/{pending.transaction_id}/{action}"
    response = await operator.post(path, {"reason": reason})
    assert response.status_code == 422
    assert "reason of 3 to 300 printable characters" in await response.get_data(as_text=True)
    as_json = await operator.client.post(
        path, form={"reason": reason, "csrf_token": operator.csrf}, headers=JSON
    )
    assert as_json.status_code == 422
    assert await _state(pending) == before


async def test_htmx_gets_the_detail_partial_back(operator, pending):
    response = await operator.post(
        f"/ops/payments/{pending.transaction_id}/cancel", {"reason": "duplicate"}, htmx=True
    )
    assert response.status_code == 200
    html = await response.get_data(as_text=True)
    assert html.lstrip().startswith('<div id="payment-detail"')
    assert 'id="action-done"' in html and "Cancelled" in html


async def test_reconcile_settles_a_pending_attempt_from_the_gateways_ledger(operator, pending):
    await SimulatedCharge.create(
        transaction_id=pending.transaction_id,
        amount=pending.amount,
        currency="INR",
        succeeded=True,
        settles_at=datetime.now(UTC) - timedelta(seconds=1),
    )
    response = await operator.post(
        f"/ops/payments/{pending.transaction_id}/reconcile", {"reason": "webhook never came"}
    )
    assert response.status_code == 303
    payment = await Payment.get(id=pending.id)
    assert payment.status == PaymentStatus.SUCCESS
    last = await PaymentEvent.filter(payment_id=pending.id).order_by("-id").first()
    assert (last.event, last.actor) == ("succeed", Actor.OPERATOR)
    assert "webhook never came" in last.detail
    action = await OperatorAction.get(action="reconcile")
    assert "settled from the gateway" in action.detail


async def test_reconcile_of_an_attempt_the_gateway_never_saw_changes_nothing(operator, pending):
    response = await operator.post(
        f"/ops/payments/{pending.transaction_id}/reconcile", {"reason": "check"}, htmx=True
    )
    assert response.status_code == 200
    assert "the gateway says the attempt is unknown" in await response.get_data(as_text=True)
    assert (await Payment.get(id=pending.id)).status == PaymentStatus.PENDING


async def test_actions_on_an_unknown_attempt_are_404(operator):
    response = await operator.post("/ops/payments/TXN0000000000000000/cancel", {"reason": "why"})
    assert response.status_code == 404


async def test_actions_are_rate_limited(app_with, settings):
    from tests.ops.conftest import make_operator

    async with app_with(settings, rate_limits=True) as limited:
        person = await make_operator(limited)
        path = "/ops/payments/TXN0000000000000000/cancel"
        codes: list[int] = []
        started = time.monotonic()
        while 429 not in codes and len(codes) < 600:
            codes.append((await person.post(path, {"reason": "x"})).status_code)
        spent = time.monotonic() - started
    # 60 a minute allows one more request for each second spent (a busy machine is slow),
    # so the refusal comes after 60, plus a request a second at most.
    assert codes[:60] == [404] * 60
    assert codes[-1] == 429
    assert len(codes) - 1 <= 60 + spent + 1, (len(codes), spent)


async def test_refund_half_with_a_reason(operator, passenger, paid):
    response = await operator.post(
        f"/ops/payments/{paid}/refund", {"amount": "625.00", "reason": "goodwill: late train"}
    )
    assert response.status_code == 303, await response.get_data(as_text=True)
    refund = await Refund.get(payment__transaction_id=paid)
    assert (refund.amount, refund.actor, refund.operator_id, refund.reason) == (
        62500,
        Actor.OPERATOR,
        operator.user_id,
        "goodwill: late train",
    )
    payment = await Payment.get(transaction_id=paid)
    assert payment.status == PaymentStatus.PARTIALLY_REFUNDED
    assert await OperatorAction.filter(action="refund", transaction_id=paid).count() == 1
    detail = await (await operator.get(f"/ops/payments/{paid}", JSON)).get_json()
    assert [r["amount"] for r in detail["refunds"]] == ["625.00"]
    moved = [e for e in detail["events"] if e["event"] == "refund_part"]
    assert [(e["from"], e["to"], e["actor"]) for e in moved] == [
        ("success", "partially_refunded", "operator")
    ]
    assert detail["refunded_amount"] == "625.00"


async def test_refund_of_more_than_refundable_is_409(operator, paid):
    payment = await Payment.get(transaction_id=paid)
    before = await _state(payment)
    response = await operator.post(
        f"/ops/payments/{paid}/refund", {"amount": "1250.01", "reason": "too much"}
    )
    assert response.status_code == 409
    assert await _state(payment) == before
    refused = await OperatorAction.get(action="refund refused", transaction_id=paid)
    assert refused.reason == "too much"
    assert refused.detail.startswith("Refused (409): ")
    audit = await operator.text("/ops/audit")
    assert "Refund (refused)" in audit and "Refused (409)" in audit


async def test_refund_of_a_failed_attempt_is_409(operator, failed):
    payment = await Payment.get(transaction_id=failed)
    before = await _state(payment)
    response = await operator.post(f"/ops/payments/{failed}/refund", {"reason": "refund it"})
    assert response.status_code == 409
    assert await _state(payment) == before


@pytest.mark.parametrize("amount", ["625.00", ""])
async def test_a_double_submitted_refund_refunds_once(operator, paid, amount):
    path = f"/ops/payments/{paid}/refund"
    form = {"amount": amount, "reason": "double click"}
    answers = await asyncio.gather(*(operator.post(path, form) for _ in range(2)))
    codes = sorted(a.status_code for a in answers)
    # The second press is the same refund (303) or finds nothing left to refund (409).
    assert codes in ([303, 303], [303, 409])
    refunds = await Refund.filter(payment__transaction_id=paid)
    assert [r.amount for r in refunds] == [62500 if amount else 125000]
    assert await OperatorAction.filter(action="refund").count() == 1


async def test_a_bad_refund_amount_is_422(operator, paid):
    for amount in ("abc", "0", "-5", "1.234"):
        response = await operator.post(
            f"/ops/payments/{paid}/refund", {"amount": amount, "reason": "bad amount"}
        )
        assert response.status_code == 422, amount
    assert not await Refund.exists()
    refused = await OperatorAction.filter(action="refund refused", transaction_id=paid)
    assert len(refused) == 4 and all("Refused (422)" in a.detail for a in refused)
