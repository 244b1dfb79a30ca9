"""Query budgets of the payment path: how many statements each step may send.

Counts, not timings: a budget that grows is a regression a benchmark would only hint at.
"""

from __future__ import annotations

from quart import Quart

from railserve import db
from railserve.models import Booking, Mail, Notification
from railserve.payment import service
from railserve.payment.models import Payment, PaymentEvent, PaymentStatus
from tests.security.helpers import event, send_webhook
from tests.support.passenger import HX, JSON, Passenger, card, make_train
from tests.support.queries import count_queries

STATUS_POLL = 1
PAY_PAGE = 2
PROCESS_POST = 5
# PostgreSQL: the start's statements (the simulator's record of the charge among them) are one.
PROCESS_POST_POSTGRES = 2
SETTLEMENT = 7
# The signed webhook, from its body to confirmed seats: one read (the attempt with what the
# settlement needs, and whether the event was seen before), then the settlement's
# statements with the event's record and the webhook log's entry.
WEBHOOK = 9


async def started(slow_app: Quart) -> tuple[Passenger, int, str]:
    passenger = await Passenger.sign_up(slow_app)
    booking_id = await passenger.book(await make_train())
    return passenger, booking_id, await passenger.start(booking_id)


async def test_status_poll_json_is_one_query(slow_app):
    passenger, _, txn = await started(slow_app)
    with count_queries() as queries:
        response = await passenger.get(f"/payment/status/{txn}", JSON)
    assert response.status_code == 200
    assert queries.count <= STATUS_POLL, queries


async def test_status_poll_partial_is_one_query(slow_app):
    passenger, _, txn = await started(slow_app)
    with count_queries() as queries:
        response = await passenger.get(f"/payment/status/{txn}", HX)
    assert response.status_code == 200
    assert queries.count <= STATUS_POLL, queries


async def test_pay_page_within_budget(slow_app):
    passenger = await Passenger.sign_up(slow_app)
    booking_id = await passenger.book(await make_train())
    with count_queries() as queries:
        response = await passenger.get(f"/payment/pay/{booking_id}")
    assert response.status_code == 200
    assert queries.count <= PAY_PAGE, queries


async def test_process_post_within_budget(slow_app):
    passenger = await Passenger.sign_up(slow_app)
    booking_id = await passenger.book(await make_train())
    form = {**await passenger.pay_form(booking_id), **card()}
    with count_queries() as queries:
        response = await passenger.post(f"/payment/process/{booking_id}", form)
    assert response.status_code == 303
    assert await Payment.filter(booking_id=booking_id, status=PaymentStatus.PENDING).count() == 1
    assert queries.count <= PROCESS_POST, queries
    if not db.sqlite_in_use():  # the booking's read, then the attempt with the gateway's record
        assert queries.count == PROCESS_POST_POSTGRES, queries


async def test_settlement_within_budget(slow_app):
    """Gateway success to confirmed seats, audit event, notification and mail."""
    _, booking_id, txn = await started(slow_app)
    with count_queries() as queries:
        result = await service.settle(txn, True)
    assert result.applied
    assert (await Booking.get(id=booking_id)).status == "confirmed"
    assert await PaymentEvent.filter(payment__transaction_id=txn, event="succeed").count() == 1
    assert await Notification.filter(booking_id=booking_id).count() == 1
    assert await Mail.filter(booking_id=booking_id).count() == 1
    assert queries.count <= SETTLEMENT, queries


async def test_webhook_within_budget(slow_app):
    _, booking_id, txn = await started(slow_app)
    with count_queries() as queries:
        response = await send_webhook(slow_app, event(txn))
    assert (await response.get_json())["result"] == "applied"
    assert (await Booking.get(id=booking_id)).status == "confirmed"
    assert queries.count <= WEBHOOK, queries
