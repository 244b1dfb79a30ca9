"""Every webhook received is logged with our answer; an operator can replay a stored one."""

from __future__ import annotations

import time

import pytest

from railserve.models import Booking
from railserve.payment.models import (
    OperatorAction,
    Payment,
    PaymentEvent,
    PaymentStatus,
    WebhookLog,
)
from railserve.payment.signature import sign
from railserve.payment.webhook import log as webhook_log
from tests.ops import seed
from tests.security.helpers import event, send_webhook


@pytest.fixture
async def pending(app) -> Payment:
    """A pending attempt the gateway never heard of: only the test's webhooks settle it."""
    owner = await seed.user("pending@example.com")
    return await seed.payment(owner, await seed.booking(owner), status=PaymentStatus.PENDING)


async def _only_log() -> WebhookLog:
    rows = await WebhookLog.all()
    assert len(rows) == 1, rows
    return rows[0]


async def test_simulator_deliveries_are_logged(paid):
    log = await WebhookLog.get(transaction_id=paid)
    assert (log.provider, log.type, log.status_code, log.signature_valid) == (
        "simulated",
        "payment.succeeded",
        200,
        True,
    )
    assert log.result == "applied" and log.event_id.startswith("evt_")


async def test_a_valid_event_is_logged_with_its_body_and_signature(app, pending):
    body = event(pending.transaction_id, event_id="evt_logged_1")
    assert (await send_webhook(app, body)).status_code == 200
    log = await _only_log()
    assert (log.event_id, log.type, log.transaction_id) == (
        "evt_logged_1",
        "payment.succeeded",
        pending.transaction_id,
    )
    assert (log.status_code, log.signature_valid, log.result) == (200, True, "applied")
    assert log.body == body.decode() and log.signature.startswith("t=")


@pytest.mark.parametrize(
    ("make", "status", "signature_valid"),
    [
        (lambda txn: (event(txn), "t=1,v1=deadbeef"), 401, False),
        (lambda txn: (b"\xff\xfenot json", None), 400, True),
        (lambda txn: (b'{"id": "evt_\\u0000", "type": "payment.failed"}', None), 400, True),
        (lambda txn: (b"raw \x00 byte", None), 400, True),
        (lambda txn: (event("TXN" + "Z" * 16), None), 404, True),
        (lambda txn: (event(txn, amount="1.00"), None), 409, True),
    ],
    ids=[
        "bad signature",
        "malformed",
        "escaped NUL",
        "raw NUL",
        "unknown transaction",
        "amount mismatch",
    ],
)
async def test_refused_events_are_logged_with_the_answer(
    app, pending, make, status, signature_valid
):
    body, header = make(pending.transaction_id)
    response = await send_webhook(app, body, header=header)
    assert response.status_code == status
    log = await _only_log()
    assert (log.status_code, log.signature_valid) == (status, signature_valid)
    assert log.result == (await response.get_json())["error"]
    assert log.body == body.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


async def test_a_replayed_event_id_is_logged_each_time(app, pending):
    body = event(pending.transaction_id)
    for _ in range(2):
        assert (await send_webhook(app, body)).status_code == 200
    assert [log.result for log in await WebhookLog.all().order_by("id")] == [
        "applied",
        "already seen",
    ]


async def test_an_unexpected_error_is_still_logged(app, pending, monkeypatch):
    async def broken(*args, **kwargs):
        raise RuntimeError("database fell over")

    monkeypatch.setattr(webhook_log, "handle", broken)
    response = await send_webhook(app, event(pending.transaction_id))
    assert response.status_code == 500
    log = await _only_log()
    assert (log.status_code, log.signature_valid) == (500, True)


async def test_the_log_page_lists_every_event_newest_first(app, operator, pending):
    await send_webhook(app, event(pending.transaction_id, event_id="evt_first"))
    await send_webhook(app, b"garbage", header="t=1,v1=00")
    html = await operator.text("/ops/webhooks")
    assert html.index("(none)") < html.index("evt_first")
    assert '<span class="answer">401</span>' in html and "invalid" in html
    assert '<span class="answer">200</span> applied' in html


async def _stale(app, txn: str, event_id: str, secret: str | None = None) -> WebhookLog:
    """An event signed ten minutes ago: refused as stale (401), and logged."""
    body = event(txn, event_id=event_id)
    header = sign(secret or "test-webhook-secret", body, int(time.time()) - 600)
    assert (await send_webhook(app, body, header=header)).status_code == 401
    return await WebhookLog.get(event_id=event_id)


async def test_replay_applies_a_stored_event_once(app, operator, pending):
    await _stale(app, pending.transaction_id, "evt_late_1")
    path = "/ops/webhooks/evt_late_1/replay"  # by the gateway's event id, as PRODUCT.md says
    response = await operator.post(path, {"reason": "gateway retried too late"})
    assert response.status_code == 303
    payment = await Payment.get(id=pending.id)
    assert payment.status == PaymentStatus.SUCCESS
    assert (await Booking.get(id=payment.booking_id)).status == "confirmed"
    assert "evt_late_1 applied" in await operator.text(response.headers["Location"])
    events = await PaymentEvent.filter(payment_id=pending.id).count()

    log = await WebhookLog.get(event_id="evt_late_1")
    again = await operator.post(f"/ops/webhooks/{log.id}/replay", {"reason": "just to be sure"})
    assert again.status_code == 303
    assert "already applied: nothing changed" in await operator.text(again.headers["Location"])
    assert await PaymentEvent.filter(payment_id=pending.id).count() == events
    actions = await OperatorAction.filter(action="replay").order_by("id")
    assert [a.reason for a in actions] == ["gateway retried too late", "just to be sure"]
    assert all(a.operator_id == operator.user_id for a in actions)


async def test_replay_refuses_an_event_whose_signature_does_not_hold(app, operator, pending):
    log = await _stale(app, pending.transaction_id, "evt_forged", secret="not-our-secret")
    response = await operator.post(f"/ops/webhooks/{log.id}/replay", {"reason": "try it"})
    assert response.status_code == 409
    assert "signature does not hold" in await response.get_data(as_text=True)
    assert (await Payment.get(id=pending.id)).status == PaymentStatus.PENDING
    assert not await OperatorAction.filter(action="replay").exists()
    assert await OperatorAction.filter(action="replay refused").exists()


async def test_replay_needs_a_reason(app, operator, pending):
    log = await _stale(app, pending.transaction_id, "evt_no_reason")
    response = await operator.post(f"/ops/webhooks/{log.id}/replay", {"reason": " x "})
    assert response.status_code == 422
    assert (await Payment.get(id=pending.id)).status == PaymentStatus.PENDING
    assert not await OperatorAction.filter(action="replay").exists()
    assert await OperatorAction.filter(action="replay refused").exists()


async def test_replay_of_an_unknown_log_entry_is_404(operator):
    assert (await operator.post("/ops/webhooks/999/replay", {"reason": "why"})).status_code == 404
    response = await operator.post("/ops/webhooks/evt_never_seen/replay", {"reason": "why"})
    assert response.status_code == 404
