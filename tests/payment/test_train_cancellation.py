"""`railserve cancel-train`: everyone refunded in full, once, even when killed halfway."""

import asyncio
import os
import signal
from asyncio.subprocess import PIPE
from datetime import timedelta

import pytest

from railserve.invariants import violations
from railserve.models import Booking, Mail, Notification, Train
from railserve.payment.models import Payment, Refund
from railserve.payment.service import now_utc
from railserve.sweep import sweep
from tests.support.passenger import make_train
from tests.support.server import RAILSERVE, ROOT, railserve
from tests.support.waiting import eventually

pytestmark = pytest.mark.server


@pytest.fixture
def env(database_url, settings):
    return {
        **os.environ,
        "RAILSERVE_DATABASE_URL": database_url,
        "RAILSERVE_ENV": "development",
        "RAILSERVE_WEBHOOK_SECRET": settings.webhook_secret,
        "RAILSERVE_GATEWAY_DELAY": "0",
        "RAILSERVE_GATEWAY_SEED": settings.gateway_seed,
    }


async def test_killed_halfway_then_run_again_refunds_everyone_once(
    app, new_passenger, env, settings
):
    train = await make_train(number="19019", seats=6)
    paid, unpaid = [], []
    for i in range(8):  # six confirmed, then two on the waitlist
        person = await new_passenger(name=f"Paid {i}")
        booking_id = await person.book(train)
        await person.pay(booking_id)
        paid.append((person, booking_id))
    for i in range(2):
        person = await new_passenger(name=f"Unpaid {i}")
        unpaid.append((person, await person.book(train)))

    command = [str(RAILSERVE), "cancel-train", "--number", "19019", "--reason", "Flooded track"]
    first = await asyncio.create_subprocess_exec(
        *command, "--pause", "0.3", env=env, cwd=ROOT, stdout=PIPE, stderr=PIPE
    )
    await eventually(lambda: Refund.all().count(), lambda n: n >= 3, interval=0.01)
    first.send_signal(signal.SIGKILL)
    await asyncio.wait_for(first.wait(), 10)
    done_before = await Booking.filter(status="cancelled").count()
    assert 3 <= done_before < 10, "killed halfway"
    assert (await Train.get(id=train.id)).cancelled_at is not None

    again = railserve(*command[1:], env=env)
    assert again.returncode == 0, again.stderr
    assert "10/10 bookings" in again.stderr or "bookings" in again.stderr
    # Refunds the killed run handed over but never heard back about: the sweep asks.
    await sweep(settings, app.extensions["railserve.gateway"], now_utc() + timedelta(minutes=1))
    for _ in range(100):
        if not await Refund.filter(status="pending").exists():
            break
        await asyncio.sleep(0.02)

    for person, booking_id in paid:
        payment = await Payment.get(booking_id=booking_id, status="refunded")
        (refund,) = await Refund.filter(payment_id=payment.id)
        assert (refund.amount, refund.charge, refund.gst, refund.status) == (
            payment.amount,
            0,
            0,
            "succeeded",
        )
        assert (await Booking.get(id=booking_id)).status == "cancelled"
        messages = await Notification.filter(user_id=person.user_id, kind="refund").values_list(
            "message", flat=True
        )
        assert messages == ["Train 19019 was cancelled by the railway: Flooded track. Full refund."]
        assert (
            await Mail.filter(user_id=person.user_id, subject__startswith="Refund of").count() == 1
        )
    for person, booking_id in unpaid:
        assert (await Booking.get(id=booking_id)).status == "cancelled"
        assert await Notification.filter(user_id=person.user_id, kind="cancellation").count() == 1
    assert (await Train.get(id=train.id)).seats_left == 6
    assert await violations() == []
    check = railserve("check", env=env)
    assert check.returncode == 0, check.stdout
    # A cancelled train takes no new bookings and leaves the list.
    person, _ = unpaid[0]
    response = await person.post("/bookings", {"train_id": str(train.id), "passenger_name": "X"})
    assert response.status_code == 422
    assert 'id="train-19019"' not in await person.text("/")


def test_unknown_train_and_short_reason_are_refused(env):
    assert (
        railserve("cancel-train", "--number", "NOPE", "--reason", "gone", env=env).returncode == 2
    )
    assert railserve("cancel-train", "--number", "1", "--reason", "x", env=env).returncode == 2
