"""A failed refund is not a dead end: an operator retries it or records the money as
returned another way; its amount no longer counts as refunded while it is failed."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from railserve.invariants import violations
from railserve.ops.reconciliation import differences
from railserve.payment.models import Actor, OperatorAction, Payment, PaymentEvent, Refund
from railserve.payment.providers.models import SimulatedCharge, SimulatedRefund
from tests.support.passenger import JSON, card

REFUSES_REFUNDS = "4000 0000 0000 0341"


@pytest.fixture
def settings(settings):
    """One refusal leaves a refund failed (the default is five, each a sweep apart)."""
    return replace(settings, refund_attempts=1)


async def until(condition, what: str):
    for _ in range(250):
        if found := await condition():
            return found
        await asyncio.sleep(0.02)
    raise AssertionError(f"never: {what}")


async def failed_refund(operator, passenger, train, amount: str = "500.00") -> Refund:
    """An operator's refund of `amount` that the gateway refused: `failed`."""
    data = await passenger.pay(await passenger.book(train), card(REFUSES_REFUNDS))
    txn = data["transaction_id"]
    response = await operator.post(
        f"/ops/payments/{txn}/refund", {"amount": amount, "reason": "goodwill, late train"}
    )
    assert response.status_code == 303
    return await until(
        lambda: Refund.get_or_none(payment__transaction_id=txn, status="failed"), "refund failed"
    )


async def test_a_failed_refund_no_longer_counts_so_the_rest_can_be_refunded(
    operator, passenger, train
):
    refund = await failed_refund(operator, passenger, train)
    payment = await Payment.get(id=refund.payment_id)
    assert payment.refunded_amount == 0
    txn = payment.transaction_id
    await SimulatedCharge.filter(transaction_id=txn).update(refunds_refused=False)
    response = await operator.post(f"/ops/payments/{txn}/refund", {"reason": "all of it"})
    assert response.status_code == 303
    assert (await Payment.get(id=payment.id)).refunded_amount == payment.amount
    # The failed one now cannot move on: it would refund more than was paid.
    path = f"/ops/refunds/{refund.refund_id}"
    assert (await operator.post(f"{path}/retry", {"reason": "try again"})).status_code == 409
    offline = {"reason": "sent by NEFT", "reference": "NEFT-1"}
    assert (await operator.post(f"{path}/settle-offline", offline)).status_code == 409
    assert (await Refund.get(id=refund.id)).status == "failed"
    await until(lambda: _all_settled(payment.id), "the full refund settled")
    assert await violations() == []


async def _all_settled(payment_id: int) -> bool:
    return not await Refund.filter(payment_id=payment_id, status="pending").exists()


async def test_retry_asks_the_gateway_again_with_a_fresh_count(operator, passenger, train):
    refund = await failed_refund(operator, passenger, train)
    payment = await Payment.get(id=refund.payment_id)
    await SimulatedCharge.filter(transaction_id=payment.transaction_id).update(
        refunds_refused=False  # the bank account was reopened
    )
    response = await operator.post(
        f"/ops/refunds/{refund.refund_id}/retry", {"reason": "account reopened"}
    )
    assert response.status_code == 303
    assert response.headers["Location"] == f"/ops/payments/{payment.transaction_id}"
    retried = await Refund.get(id=refund.id)
    assert retried.tries <= 1 and retried.retried_attempts == 1
    assert (await Payment.get(id=payment.id)).refunded_amount == 50000
    done = await until(
        lambda: Refund.get_or_none(id=refund.id, status="succeeded"), "retried refund paid"
    )
    assert done.tries == 1 and done.attempts == 2
    assert await SimulatedRefund.filter(refund_id=refund.refund_id, succeeded=True).count() == 1
    action = await OperatorAction.get(action="refund_retry")
    assert (action.transaction_id, action.reason, action.operator_id) == (
        payment.transaction_id,
        "account reopened",
        operator.user_id,
    )
    event = await PaymentEvent.get(payment_id=payment.id, event="refund_retried")
    assert event.actor == Actor.OPERATOR
    assert await differences() == []
    assert await violations() == []


async def test_settle_offline_records_money_returned_another_way(operator, passenger, train):
    refund = await failed_refund(operator, passenger, train)
    payment = await Payment.get(id=refund.payment_id)
    response = await operator.post(
        f"/ops/refunds/{refund.refund_id}/settle-offline",
        {"reference": "NEFT-UTR-00042", "reason": "bank transfer to the passenger"},
    )
    assert response.status_code == 303
    settled = await Refund.get(id=refund.id)
    assert (settled.status, settled.actor, settled.operator_id, settled.offline_reference) == (
        "succeeded",
        Actor.OPERATOR,
        operator.user_id,
        "NEFT-UTR-00042",
    )
    assert (await Payment.get(id=payment.id)).refunded_amount == 50000
    profile = await passenger.text("/profile")
    assert "NEFT-UTR-00042" in profile and "paid back to you another way" in profile
    assert await differences() == []
    report = await (await operator.get("/ops/reconciliation", JSON)).get_json()
    assert report["differences"] == []
    assert [(o["refund_id"], o["reference"]) for o in report["settled_offline"]] == [
        (refund.refund_id, "NEFT-UTR-00042")
    ]
    assert "NEFT-UTR-00042" in await operator.text("/ops/reconciliation")
    assert "NEFT-UTR-00042" in await operator.text("/ops/audit") or await OperatorAction.exists(
        action="offline", reason="bank transfer to the passenger"
    )
    event = await PaymentEvent.get(payment_id=payment.id, event="refund_settled_offline")
    assert event.actor == Actor.OPERATOR
    assert await violations() == []
    # Once settled it is no longer failed: both actions are 409.
    path = f"/ops/refunds/{refund.refund_id}"
    assert (await operator.post(f"{path}/retry", {"reason": "again"})).status_code == 409
    offline = {"reference": "X", "reason": "again please"}
    assert (await operator.post(f"{path}/settle-offline", offline)).status_code == 409


@pytest.mark.parametrize(
    ("action", "form", "status"),
    [
        ("retry", {"reason": "ab"}, 422),
        ("settle-offline", {"reason": "bank transfer", "reference": ""}, 422),
        ("settle-offline", {"reason": "bank transfer", "reference": "x" * 65}, 422),
        ("settle-offline", {"reason": "", "reference": "NEFT-1"}, 422),
    ],
)
async def test_refund_actions_check_their_fields_and_change_nothing(
    operator, passenger, train, action, form, status
):
    refund = await failed_refund(operator, passenger, train)
    accepted = OperatorAction.exclude(action__endswith=" refused")
    before = await accepted.count()
    response = await operator.post(f"/ops/refunds/{refund.refund_id}/{action}", form)
    assert response.status_code == status
    assert (await Refund.get(id=refund.id)).status == "failed"
    assert await accepted.count() == before
    # The refusal itself is audited, with why, under the action's own name.
    code = {"retry": "refund_retry", "settle-offline": "offline"}[action]
    refused = await OperatorAction.get(action=f"{code} refused")
    assert refused.detail.startswith(f"Refused ({status}): ")


async def test_refund_actions_need_csrf_an_operator_and_a_known_refund(operator, passenger, train):
    refund = await failed_refund(operator, passenger, train)
    path = f"/ops/refunds/{refund.refund_id}/retry"
    assert (await operator.post(path, {"reason": "no token"}, csrf=False)).status_code == 403
    assert (await passenger.post(path, {"reason": "not mine to do"})).status_code == 404
    for unknown in ("RFD0000000000000000", "nope", "RFD" + "A" * 40):
        response = await operator.post(f"/ops/refunds/{unknown}/retry", {"reason": "unknown"})
        assert response.status_code == 404
    assert (await Refund.get(id=refund.id)).status == "failed"
