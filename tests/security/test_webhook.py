"""The gateway's callback, POST /payment/webhook, exactly as PRODUCT.md specifies it."""

from __future__ import annotations

import json
import time

import pytest

from railserve.models import Booking, Notification
from railserve.payment.models import Payment, PaymentEvent, WebhookEvent
from railserve.payment.signature import TOLERANCE_SECONDS, sign
from tests.conftest import WEBHOOK_SECRET
from tests.security.helpers import event, send_webhook, snapshot


@pytest.fixture
async def pending(passenger, train) -> str:
    """A pending attempt of 1250.00 INR that only a webhook will settle."""
    return await passenger.start(await passenger.book(train))


async def _status(transaction_id: str) -> tuple[str, str]:
    payment = await Payment.get(transaction_id=transaction_id)
    booking = await Booking.get(id=payment.booking_id)
    return payment.status.value, booking.status.value


async def _rejections(transaction_id: str) -> list[PaymentEvent]:
    return await PaymentEvent.filter(
        payment__transaction_id=transaction_id, event="webhook_rejected"
    )


async def test_a_signed_success_confirms_the_booking(app, passenger, pending):
    response = await send_webhook(app, event(pending))
    assert response.status_code == 200
    assert await _status(pending) == ("success", "confirmed")
    assert await Notification.filter(user_id=passenger.user_id).count() == 1


async def test_a_signed_failure_keeps_the_booking_payable(app, passenger, pending):
    response = await send_webhook(app, event(pending, "payment.failed"))
    assert response.status_code == 200
    assert await _status(pending) == ("failed", "pending_payment")
    assert (await passenger.status(pending))["failure_reason"] == "Card declined"


async def test_several_signatures_one_right_is_accepted(app, pending):
    """Key rotation: the gateway signs with old and new secrets; one match is enough."""
    body = event(pending)
    now = int(time.time())
    right = sign(WEBHOOK_SECRET, body, now).split(",v1=")[1]
    wrong = sign("an-old-secret", body, now).split(",v1=")[1]
    header = f"t={now},v1={wrong},v1={right}"
    assert (await send_webhook(app, body, header=header)).status_code == 200
    assert await _status(pending) == ("success", "confirmed")


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("", id="missing"),
        pytest.param("garbage", id="malformed"),
        pytest.param("t=now", id="no-v1"),
        pytest.param("v1=00ff", id="no-timestamp"),
        pytest.param("other-secret", id="wrong-secret"),
        pytest.param("other-body", id="signature-of-another-body"),
        pytest.param("stale", id="older-than-five-minutes"),
        pytest.param("future", id="more-than-five-minutes-ahead"),
        pytest.param("shifted-t", id="timestamp-changed-after-signing"),
        pytest.param("two-wrong", id="several-all-wrong"),
    ],
)
async def test_unsigned_or_stale_events_are_refused_with_401(app, pending, header):
    body = event(pending)
    now = int(time.time())
    real = sign(WEBHOOK_SECRET, body, now)
    headers = {
        "": "",
        "garbage": "garbage",
        "t=now": f"t={now}",
        "v1=00ff": "v1=00ff",
        "other-secret": sign("not-the-secret", body, now),
        "other-body": sign(WEBHOOK_SECRET, event(pending, amount="1.00"), now),
        # Ten seconds past the tolerance: `now` is whole seconds and the request takes a
        # while, so 301 s ahead of it can be 300.x s ahead of the server's clock when it
        # checks (the exact bound is tests/payment/providers/test_simulated.py's, clock fixed).
        "stale": sign(WEBHOOK_SECRET, body, now - TOLERANCE_SECONDS - 10),
        "future": sign(WEBHOOK_SECRET, body, now + TOLERANCE_SECONDS + 10),
        "shifted-t": real.replace(f"t={now}", f"t={now - 1}"),
        "two-wrong": f"t={now},v1={'0' * 64},v1={'f' * 64}",
    }
    before = await snapshot()
    response = await send_webhook(app, body, header=headers[header] or "")
    assert response.status_code == 401
    assert response.mimetype == "application/json"
    assert await snapshot() == before


@pytest.mark.parametrize("offset", [-290, 290])
async def test_clock_skew_within_five_minutes_is_tolerated(app, pending, offset):
    response = await send_webhook(app, event(pending), timestamp=int(time.time()) + offset)
    assert response.status_code == 200
    assert await _status(pending) == ("success", "confirmed")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"{not json", id="not-json"),
        pytest.param(b"\xff\xfe", id="not-utf8"),
        pytest.param(b"[]", id="array"),
        pytest.param(b"", id="empty"),
        pytest.param("type", id="unknown-type"),
        pytest.param("no-id", id="missing-id"),
        pytest.param("amount-number", id="amount-not-a-string"),
    ],
)
async def test_malformed_events_are_400(app, pending, body):
    if body == "type":
        body = event(pending, "payment.teleported")
    elif body == "no-id":
        data = json.loads(event(pending))
        del data["id"]
        body = json.dumps(data).encode()
    elif body == "amount-number":
        body = event(pending, amount=1250)
    before = await snapshot()
    response = await send_webhook(app, body)
    assert response.status_code == 400, await response.get_data(as_text=True)
    assert await snapshot() == before


async def test_unknown_transaction_is_404(app, pending):
    before = await snapshot()
    response = await send_webhook(app, event("TXN" + "Z" * 16))
    assert response.status_code == 404
    assert await snapshot() == before


@pytest.mark.parametrize(
    "mismatch", [{"amount": "1.00"}, {"amount": "1250.01"}, {"currency": "USD"}]
)
async def test_amount_or_currency_mismatch_is_409_audited_and_moves_nothing(app, pending, mismatch):
    before = await snapshot()
    response = await send_webhook(app, event(pending, **mismatch))
    assert response.status_code == 409
    assert await _status(pending) == ("pending", "pending_payment")
    [rejection] = await _rejections(pending)
    assert (rejection.from_status, rejection.to_status, rejection.actor) == (
        "pending",
        "pending",
        "gateway",
    )
    after = await snapshot()
    assert after.pop("PaymentEvent") == before.pop("PaymentEvent") + 1
    assert after == before


@pytest.mark.parametrize(
    ("first", "then", "final"),
    [
        ("payment.failed", "payment.succeeded", ("failed", "pending_payment")),
        ("payment.succeeded", "payment.failed", ("success", "confirmed")),
    ],
)
async def test_an_event_contradicting_the_state_is_409_and_recorded(
    app, pending, first, then, final
):
    if first:
        assert (await send_webhook(app, event(pending, first))).status_code == 200
    before = await snapshot()
    response = await send_webhook(app, event(pending, then))
    assert response.status_code == 409
    assert await _status(pending) == final
    assert len(await _rejections(pending)) == 1
    after = await snapshot()
    assert after.pop("PaymentEvent") == before.pop("PaymentEvent") + 1
    if then == "payment.succeeded":  # money captured after a failure goes back; we say so
        for key in ("Notification", "Mail", "unread", "Refund"):
            assert after.pop(key) == before.pop(key) + 1
    assert after == before


async def test_a_replayed_event_id_is_acknowledged_without_effect(app, passenger, pending):
    body = event(pending, event_id="evt_replayed_once")
    assert (await send_webhook(app, body)).status_code == 200
    before = await snapshot()

    assert (await send_webhook(app, body)).status_code == 200
    # The same id with another meaning is still the same event: nothing happens.
    again = event(pending, "payment.failed", event_id="evt_replayed_once")
    assert (await send_webhook(app, again)).status_code == 200

    assert await snapshot() == before
    assert await _status(pending) == ("success", "confirmed")
    assert await WebhookEvent.filter(id="evt_replayed_once").count() == 1


async def test_a_second_event_with_the_same_outcome_changes_nothing(app, pending):
    """A gateway may report one outcome twice under two ids: no double confirmation."""
    assert (await send_webhook(app, event(pending))).status_code == 200
    before = await snapshot()
    assert (await send_webhook(app, event(pending))).status_code == 200
    assert await snapshot() == before
