"""A server killed mid-flight (SIGKILL, both workers) loses no money and doubles none.

Payments are started one after another while the gateway takes 2 s, so at the moment of
the kill some have settled, some wait for the gateway's report and some are half-way
through their request. After a restart, `railserve sweep` reconciles every attempt left
pending with the gateway's ledger.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest

from railserve.models import Booking, BookingStatus
from railserve.payment.models import Payment, PaymentStatus, Refund, RefundStatus
from railserve.payment.providers.models import SimulatedCharge, SimulatedRefund
from tests.concurrency.conftest import World, http_world
from tests.support.database import DatabaseFactory
from tests.support.passenger import card
from tests.support.server import LiveServer, railserve

pytestmark = pytest.mark.server

GATEWAY_DELAY = 2.0
PAYMENTS = 20
SPACING = 0.15  # seconds between payments: they span 3 s


async def until(count, at_least: int, timeout: float = 60.0) -> None:
    """Wait until `await count()` reaches `at_least`."""
    deadline = time.monotonic() + timeout
    while await count() < at_least:
        assert time.monotonic() < deadline, f"fewer than {at_least} after {timeout} s"
        await asyncio.sleep(0.02)


@pytest.fixture
def crashing_server(database_factory: DatabaseFactory) -> Iterator[LiveServer]:
    server = LiveServer(database_factory.new_url(), workers=2, gateway_delay=str(GATEWAY_DELAY))
    server.start()
    yield server
    server.kill()


@pytest.fixture
async def crash_world(crashing_server: LiveServer) -> AsyncIterator[World]:
    async with http_world(crashing_server) as world:
        yield world


async def test_sigkill_mid_flight_loses_no_money(crash_world: World, crashing_server: LiveServer):
    world = crash_world
    train = await world.new_train(seats=8)
    people = await world.new_passengers(PAYMENTS // 4)
    bookings = [(p, await p.book(train)) for p in people for _ in range(4)]
    forms = [await p.pay_form(b) for p, b in bookings]

    async def pay(index: int) -> None:
        await asyncio.sleep(index * SPACING)
        person, booking_id = bookings[index]
        await person.post(f"/payment/process/{booking_id}", {**forms[index], **card()})

    payments = [asyncio.ensure_future(pay(i)) for i in range(PAYMENTS)]
    # Killed once half the attempts are in (the newest still pending: the gateway takes
    # 2 s), however slowly a busy machine got them there.
    await until(lambda: Payment.all().count(), at_least=PAYMENTS // 2)
    crashing_server.kill()
    await asyncio.gather(*payments, return_exceptions=True)  # the late ones find no server
    started = await Payment.all().count()
    assert started >= 10, "the kill came before the payments it should interrupt"
    assert await Payment.filter(status=PaymentStatus.PENDING).exists(), "nothing was in flight"

    # Restart (same database, same gateway seed and secret), then reconcile once every
    # attempt is older than the gateway delay plus the reconciliation margin (5 s).
    crashing_server.start()
    newest = await Payment.all().order_by("-created_at").first()
    age = (datetime.now(UTC) - newest.created_at).total_seconds()
    await asyncio.sleep(max(0.0, GATEWAY_DELAY + 5.5 - age))
    # An attempt committed just before the kill, whose charge never reached the gateway,
    # is unknown there: only the payment timeout settles it, so the operator's sweep runs
    # with a short one.
    sweep_env = {**crashing_server.env, "RAILSERVE_PAYMENT_TIMEOUT": str(GATEWAY_DELAY + 5)}
    done = await asyncio.to_thread(railserve, "sweep", env=sweep_env)
    assert done.returncode == 0, done.stdout + done.stderr

    attempts = await Payment.all()
    assert [p.transaction_id for p in attempts if p.status == PaymentStatus.PENDING] == []
    charges = {c.transaction_id: c for c in await SimulatedCharge.all()}
    for payment in attempts:
        charge = charges.get(payment.transaction_id)
        taken = charge is not None and charge.succeeded
        kept = payment.status == PaymentStatus.SUCCESS
        # The gateway took the money exactly when we kept it: nothing lost, nothing doubled.
        assert taken == kept, (payment.transaction_id, payment.status, charge and charge.succeeded)
    for _person, booking_id in bookings:
        paid = await Payment.filter(booking_id=booking_id, status=PaymentStatus.SUCCESS).count()
        booking = await Booking.get(id=booking_id)
        assert paid <= 1
        holding = booking.status in (BookingStatus.CONFIRMED, BookingStatus.WAITLISTED)
        assert holding == (paid == 1), (booking.status, paid)
    await world.check()

    # The restarted server works as before.
    person, booking_id = bookings[-1]
    if (await Booking.get(id=booking_id)).status == BookingStatus.PENDING_PAYMENT:
        final = await person.pay(booking_id)
        assert final["status"] == "success"
    await world.check()


async def test_sigkill_mid_refunds_settles_each_refund_once(
    crash_world: World, crashing_server: LiveServer
):
    """Killed while cancellations commit and the gateway holds their refunds: after a
    restart the sweep settles every refund exactly once, and no money goes missing."""
    world = crash_world
    train = await world.new_train(seats=20)
    people = await world.new_passengers(4)
    bookings = [(p, await p.book(train, ["A", "B"])) for p in people for _ in range(3)]
    await asyncio.gather(*(p.pay(b) for p, b in bookings))
    assert await Payment.filter(status=PaymentStatus.SUCCESS).count() == len(bookings)

    async def cancel(index: int) -> None:
        await asyncio.sleep(index * 0.1)
        person, booking_id = bookings[index]
        await person.post(f"/bookings/{booking_id}/cancel", {"passenger": "1"})

    cancelling = [asyncio.ensure_future(cancel(i)) for i in range(len(bookings))]
    await until(lambda: Refund.all().count(), at_least=3)  # their refunds still pending
    crashing_server.kill()
    await asyncio.gather(*cancelling, return_exceptions=True)
    opened = await Refund.all().count()
    assert opened >= 3, "the kill came before the cancellations it should interrupt"
    assert await Refund.filter(status=RefundStatus.PENDING).exists(), "nothing was in flight"

    crashing_server.start()
    newest = await Refund.all().order_by("-created_at").first()
    age = (datetime.now(UTC) - newest.created_at).total_seconds()
    await asyncio.sleep(max(0.0, GATEWAY_DELAY + 5.5 - age))
    # A refund handed over by a sweep settles at the gateway after its delay; the next
    # sweep learns of it. Sweep until nothing is pending (as cron would).
    deadline = time.monotonic() + 60
    while True:
        done = await asyncio.to_thread(railserve, "sweep", env=crashing_server.env)
        assert done.returncode == 0, done.stdout + done.stderr
        if not await Refund.filter(status=RefundStatus.PENDING).exists():
            break
        assert time.monotonic() < deadline, "refunds still pending after a minute of sweeps"
        await asyncio.sleep(0.5)

    refunds = await Refund.all()
    assert len(refunds) == opened
    assert [r.refund_id for r in refunds if r.status != RefundStatus.SUCCEEDED] == []
    for refund in refunds:
        ledger = await SimulatedRefund.filter(refund_id=refund.refund_id, succeeded=True)
        assert len(ledger) == 1 and ledger[0].amount == refund.amount, refund.refund_id
    for payment in await Payment.filter(refunded_amount__gt=0):
        assert payment.status == PaymentStatus.PARTIALLY_REFUNDED
    await world.check()
