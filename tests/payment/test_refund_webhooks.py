"""The gateway's refund events: each settles the refund it names, once, and nothing else."""

import pytest

from railserve.models import Notification
from railserve.payment.models import PaymentEvent, Refund
from tests.security.helpers import event, send_webhook


class Unreachable(Exception):
    pass


@pytest.fixture
async def pending_refund(app, passenger, train, monkeypatch) -> Refund:
    """A refund committed with its cancellation, whose gateway has not answered yet."""
    booking_id = await passenger.book(train, ["A", "B"])
    await passenger.pay(booking_id)
    gateway = app.extensions["railserve.gateway"]

    async def unreachable(request):
        raise Unreachable

    monkeypatch.setattr(gateway, "refund", unreachable)
    response = await passenger.post(f"/bookings/{booking_id}/cancel", {"passenger": "1"})
    assert response.status_code == 303
    refund = await Refund.get().prefetch_related("payment")
    assert refund.status == "pending"
    return refund


def refund_event(refund: Refund, kind: str = "refund.succeeded", **extra) -> bytes:
    fields = {
        "amount": "1061.00",
        "refund_id": refund.refund_id,
        "failure_reason": "Card account closed" if kind == "refund.failed" else None,
        **extra,
    }
    return event(refund.payment.transaction_id, kind, **fields)


async def test_a_refund_succeeded_event_settles_it_once(app, passenger, pending_refund):
    body = refund_event(pending_refund, reference="GRF0001", id="evt_refund_once")
    response = await send_webhook(app, body)
    assert (response.status_code, (await response.get_json())["result"]) == (200, "applied")
    refund = await Refund.get(id=pending_refund.id)
    assert (refund.status, refund.gateway_reference) == ("succeeded", "GRF0001")
    assert await Notification.filter(user_id=passenger.user_id, kind="refund_done").count() == 1

    replay = await send_webhook(app, body)
    assert (await replay.get_json())["result"] == "already seen"
    same = await send_webhook(app, refund_event(pending_refund))
    assert (await same.get_json())["result"] == "already applied"
    contradiction = await send_webhook(app, refund_event(pending_refund, "refund.failed"))
    assert contradiction.status_code == 409
    assert (await Refund.get(id=pending_refund.id)).status == "succeeded"
    rejected = await PaymentEvent.filter(event="webhook_rejected").values_list("detail", flat=True)
    assert len(rejected) == 1 and "contradicts refund succeeded" in rejected[0]
    assert await Notification.filter(user_id=passenger.user_id, kind="refund_done").count() == 1


async def test_a_refused_refund_waits_for_a_retry_until_the_last_attempt(
    app, settings, pending_refund
):
    response = await send_webhook(app, refund_event(pending_refund, "refund.failed"))
    assert response.status_code == 200
    refund = await Refund.get(id=pending_refund.id)
    assert (refund.status, refund.failure_reason) == ("pending", "Card account closed")
    await Refund.filter(id=refund.id).update(attempts=settings.refund_attempts)
    response = await send_webhook(app, refund_event(pending_refund, "refund.failed"))
    assert response.status_code == 200
    assert (await Refund.get(id=refund.id)).status == "failed"


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"amount": "1062.00"}, 409),
        ({"currency": "USD"}, 409),
        ({"refund_id": "RFD0000000000000000"}, 404),
        ({"refund_id": "not-a-refund"}, 400),
        ({"refund_id": None}, 400),
    ],
)
async def test_a_wrong_refund_event_is_refused_and_moves_nothing(
    app, pending_refund, change, status
):
    response = await send_webhook(app, refund_event(pending_refund, **change))
    assert response.status_code == status
    assert (await Refund.get(id=pending_refund.id)).status == "pending"
