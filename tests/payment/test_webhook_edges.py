"""Gateway webhook edges: malformed fields refused with 400, refund events naming an
unknown refund or the wrong amount refused, and nothing moved by either."""

from __future__ import annotations

import pytest

from railserve.payment.models import Payment, PaymentEvent, Refund, WebhookEvent
from tests.payment.test_refund_webhooks import pending_refund, refund_event  # noqa: F401
from tests.security.helpers import event, send_webhook, snapshot
from tests.support.passenger import Passenger, make_train


@pytest.fixture
async def pending(slow_app) -> str:
    """An attempt the simulator reports only in 30 s: the test's webhook is the first."""
    person = await Passenger.sign_up(slow_app)
    return await person.start(await person.book(await make_train()))


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"transaction_id": "not-a-transaction"}, id="bad-transaction-id"),
        pytest.param({"created": "yesterday"}, id="created-not-int"),
        pytest.param({"created": True}, id="created-bool"),
        pytest.param({"failure_reason": 42}, id="reason-not-string"),
    ],
)
async def test_malformed_fields_are_400_and_move_nothing(slow_app, pending, fields):
    before = await snapshot()
    fields = dict(fields)
    txn = fields.pop("transaction_id", pending)
    response = await send_webhook(slow_app, event(txn, **fields))
    assert response.status_code == 400, await response.get_data(as_text=True)
    assert await snapshot() == before
    assert (await Payment.get(transaction_id=pending)).status == "pending"


async def test_a_refund_event_for_an_unknown_refund_is_404(app, pending_refund):  # noqa: F811
    body = event(
        pending_refund.payment.transaction_id,
        "refund.succeeded",
        amount="1061.00",
        refund_id="RFD" + "0" * 16,
    )
    response = await send_webhook(app, body)
    assert response.status_code == 404
    assert (await Refund.get(id=pending_refund.id)).status == "pending"


async def test_a_refund_event_with_the_wrong_amount_is_409_and_audited(
    app,
    pending_refund,  # noqa: F811
):
    response = await send_webhook(app, refund_event(pending_refund, amount="1.00"))
    assert response.status_code == 409
    assert (await Refund.get(id=pending_refund.id)).status == "pending"
    rejected = await PaymentEvent.filter(event="webhook_rejected").values_list("detail", flat=True)
    assert len(rejected) == 1 and pending_refund.refund_id in rejected[0]


async def test_an_event_seen_before_is_acknowledged_even_for_an_unknown_transaction(slow_app):
    """The seen-before check rides on the attempt's read; with no attempt it asks alone."""
    seen = "evt_" + "b" * 24
    await WebhookEvent.create(id=seen, type="payment.succeeded", transaction_id="TXN" + "1" * 16)
    replay = await send_webhook(slow_app, event("TXN" + "1" * 16, event_id=seen))
    assert replay.status_code == 200
    assert (await replay.get_json())["result"] == "already seen"
    unknown = await send_webhook(slow_app, event("TXN" + "2" * 16))
    assert unknown.status_code == 404


async def test_a_replayed_event_is_acknowledged_and_moves_nothing_again(slow_app, pending):
    body = event(pending, event_id="evt_" + "c" * 24)
    first = await send_webhook(slow_app, body)
    assert (await first.get_json())["result"] == "applied"
    before = await snapshot()
    again = await send_webhook(slow_app, body)
    assert (await again.get_json())["result"] == "already seen"
    assert await snapshot() == before
