"""A refund's settlement and an operator's moves of a failed refund (steps/refund.py), run by
the executor of the database in use, leave the same rows on both (as tests/payment/
test_steps.py does for the payment steps; the suite runs once per database)."""

from __future__ import annotations

import asyncio

import pytest

from railserve.errors import Conflict
from railserve.models import Mail, Notification, User
from railserve.payment import service
from railserve.payment.models import (
    Actor,
    OperatorAction,
    Payment,
    PaymentEvent,
    Refund,
    WebhookEvent,
)
from railserve.payment.refunds import console, handover
from tests.payment.test_steps import world

pytestmark = pytest.mark.usefixtures("app")

RFD = "RFD0000000000000001"
GIVEN_BACK = "Booking B000000001: Refund RFD0000000000000001 of ₹50.00 was paid back."
NOT_PAID_BACK = (
    "Booking B000000001: Refund RFD0000000000000001 of ₹50.00 could not be paid back "
    "(Card account closed). Our team will contact you to return it another way."
)


async def refund_pending(attempts: int = 1) -> Payment:
    """A paid booking (₹200.00) with a refund of ₹50.00 opened and handed to the gateway
    `attempts` times: the payment partially refunded, its refunded amount raised."""
    (payment,) = await world(5, 2)
    assert (await service.settle(payment.transaction_id, True)).applied
    await Payment.filter(id=payment.id).update(status="partially_refunded", refunded_amount=5000)
    await Refund.create(
        refund_id=RFD,
        payment_id=payment.id,
        passengers=[2],
        amount=5000,
        actor=Actor.USER,
        attempts=attempts,
    )
    await Notification.all().delete()
    await Mail.all().delete()
    await PaymentEvent.all().delete()
    return payment


async def rows() -> dict:
    """What a refund's step leaves, without ids or times (which differ by database)."""
    refund = await Refund.get(refund_id=RFD)
    payment = await Payment.get(id=refund.payment_id)
    return {
        "refund": (
            refund.status.value,
            refund.failure_reason,
            refund.gateway_reference,
            refund.offline_reference,
            refund.retried_attempts,
            refund.settled_at is not None,
        ),
        "payment": (payment.status.value, payment.refunded_amount),
        "events": [
            (e.from_status, e.to_status, e.event, e.actor.value, e.detail)
            for e in await PaymentEvent.all().order_by("id")
        ],
        "notices": [(n.kind, n.message) for n in await Notification.all().order_by("id")],
        "mails": await Mail.all().order_by("id").values_list("to_address", "subject"),
    }


MAIL = ("p1@example.com", f"Booking B000000001: refund {RFD}")
PARTLY = "partially_refunded"


async def test_a_refund_succeeds(settings):
    await refund_pending()
    assert await handover.settle_refund(settings, RFD, True, reference="GW42", detail="webhook")
    assert not await handover.settle_refund(settings, RFD, True)  # settled once
    assert await rows() == {
        "refund": ("succeeded", None, "GW42", None, None, True),
        "payment": (PARTLY, 5000),
        "events": [(PARTLY, PARTLY, "refund_succeeded", "gateway", f"{RFD}: ₹50.00 webhook")],
        "notices": [("refund_done", GIVEN_BACK)],
        "mails": [MAIL],
    }


async def test_a_refused_refund_stays_pending_to_be_asked_again(settings):
    await refund_pending(attempts=settings.refund_attempts - 1)
    assert await handover.settle_refund(settings, RFD, False, reason="Card account closed")
    assert await rows() == {
        "refund": ("pending", "Card account closed", None, None, None, False),
        "payment": (PARTLY, 5000),
        "events": [
            (PARTLY, PARTLY, "refund_refused", "gateway", f"{RFD}: Card account closed; will retry")
        ],
        "notices": [],
        "mails": [],
    }


async def test_a_last_refusal_fails_it_and_gives_the_amount_back(settings):
    await refund_pending(attempts=settings.refund_attempts)
    assert await handover.settle_refund(
        settings, RFD, False, reason="Card account closed", actor=Actor.SYSTEM
    )
    assert await rows() == {
        "refund": ("failed", "Card account closed", None, None, None, True),
        "payment": (PARTLY, 0),
        "events": [(PARTLY, PARTLY, "refund_failed", "system", f"{RFD}: Card account closed")],
        "notices": [("refund_failed", NOT_PAID_BACK)],
        "mails": [MAIL],
    }


async def test_two_verdicts_at_once_apply_once(settings):
    await refund_pending(attempts=settings.refund_attempts)
    applied = await asyncio.gather(
        handover.settle_refund(settings, RFD, True),
        handover.settle_refund(settings, RFD, False, reason="Card account closed"),
    )
    assert sorted(applied) == [False, True]
    snapshot = await rows()
    assert len(snapshot["events"]) == len(snapshot["notices"]) == 1
    succeeded = snapshot["refund"][0] == "succeeded"
    assert snapshot["payment"] == (PARTLY, 5000 if succeeded else 0)


async def test_a_webhook_record_is_written_whatever_it_decides(settings):
    await refund_pending()
    assert await handover.settle_refund(settings, RFD, True)
    seen = WebhookEvent(id="evt_late", type="refund.failed", transaction_id="TXN1")
    assert not await handover.settle_refund(settings, RFD, False, record=seen)
    assert await WebhookEvent.exists(id="evt_late")
    assert (await rows())["refund"][0] == "succeeded"


async def operator() -> int:
    user = await User.create(name="Op", email="op@example.com", password_hash="x")
    return user.id


async def test_a_failed_refund_settled_offline(settings):
    await refund_pending(attempts=settings.refund_attempts)
    await handover.settle_refund(settings, RFD, False, reason="Card account closed")
    await Notification.all().delete()
    await Mail.all().delete()
    await PaymentEvent.all().delete()
    operator_id = await operator()
    made = await console.settle_offline(
        operator_id=operator_id, refund_id=RFD, reference="NEFT-7", reason="Paid by transfer"
    )
    assert (made.status, made.actor, made.operator_id) == ("succeeded", "operator", operator_id)
    detail = f"{RFD}: ₹50.00 returned outside the gateway, reference NEFT-7"
    assert await rows() == {
        "refund": ("succeeded", None, None, "NEFT-7", settings.refund_attempts, True),
        "payment": (PARTLY, 5000),
        "events": [
            (PARTLY, PARTLY, "refund_settled_offline", "operator", f"{detail} — Paid by transfer")
        ],
        "notices": [
            (
                "refund_done",
                f"Booking B000000001: Refund {RFD} of ₹50.00 was paid back to you another way "
                "(reference NEFT-7).",
            )
        ],
        "mails": [MAIL],
    }
    assert await OperatorAction.all().values_list("action", "reason", "detail") == [
        ("offline", "Paid by transfer", detail)
    ]
    with pytest.raises(Conflict):  # only a failed refund moves on; nothing more is written
        await console.settle_offline(
            operator_id=operator_id, refund_id=RFD, reference="NEFT-8", reason="Again"
        )
    assert await OperatorAction.all().count() == 1 and await PaymentEvent.all().count() == 1


async def test_a_failed_refund_retried_cannot_pass_the_payment(settings):
    payment = await refund_pending(attempts=settings.refund_attempts)
    await handover.settle_refund(settings, RFD, False, reason="Card account closed")
    await PaymentEvent.all().delete()
    await Payment.filter(id=payment.id).update(refunded_amount=17000)  # refunded meanwhile
    with pytest.raises(Conflict):
        await console.retry_failed(
            None, settings, operator_id=await operator(), refund_id=RFD, reason="Ask again"
        )
    snapshot = await rows()
    assert (snapshot["refund"][0], snapshot["payment"], snapshot["events"]) == (
        "failed",
        (PARTLY, 17000),
        [],
    )
