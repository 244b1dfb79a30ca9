"""The simulated card gateway's refusals and what it reports to reconciliation."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import pytest

from railserve.payment.models import Payment
from railserve.payment.providers import ChargeRequest, RefundRequest
from railserve.payment.providers.models import SimulatedCharge, SimulatedRefund
from tests.support.passenger import Passenger, card, make_train

DECLINED = "4000 0000 0000 0002"


@pytest.fixture
async def held(app_with, settings):
    """An app whose simulator reports a minute later: the ledger alone is under test."""
    async with app_with(settings, gateway_delay=60.0) as app:
        yield app


def simulated(app):
    return app.extensions["railserve.gateways"].gateway_for("simulated")


async def test_refunds_it_cannot_make_are_refused_at_once(held):
    """No charge, a declined charge, another currency, more than charged: refused."""
    gateway = simulated(held)
    person = await Passenger.sign_up(held)
    charged = await person.start(await person.book(await make_train()), card())
    declined = await person.start(await person.book(await make_train()), card(DECLINED))
    amount = (await SimulatedCharge.get(transaction_id=charged)).amount

    def ask(txn, value=100, currency="INR"):
        return gateway.refund(RefundRequest("RF" + secrets.token_hex(6), 1, txn, value, currency))

    no_charge = "The gateway has no successful charge to refund"
    for result, reason in [
        (await ask("TXN-nobody"), no_charge),
        (await ask(declined), no_charge),
        (await ask(charged, currency="USD"), "The refund currency does not match"),
        (await ask(charged, amount + 1), "The refund exceeds what was charged"),
    ]:
        assert (result.ok, result.reason) == (False, reason)
    assert await SimulatedRefund.all().count() == 0


async def test_the_same_attempt_asked_twice_is_one_refund(held):
    """(refund_id, attempt) is the idempotency key: one ledger row, one reference."""
    gateway = simulated(held)
    person = await Passenger.sign_up(held)
    txn = await person.start(await person.book(await make_train()), card())
    request = RefundRequest("RFTWICE", 1, txn, 100, "INR")
    first, again = await gateway.refund(request), await gateway.refund(request)
    assert first.ok and again.ok and first.reference == again.reference
    assert await SimulatedRefund.filter(refund_id="RFTWICE").count() == 1
    state = await gateway.query_refund("RFTWICE")
    assert (state.state, state.attempt, state.reference) == ("pending", 1, first.reference)
    assert (await gateway.query_refund("RF-never-asked")).state == "unknown"


async def test_query_reports_unknown_pending_and_the_decline(held):
    gateway = simulated(held)
    person = await Passenger.sign_up(held)
    txn = await person.start(await person.book(await make_train()), card(DECLINED))
    assert (await gateway.query("TXN-nobody")).state == "unknown"
    assert (await gateway.query(txn)).state == "pending"
    await SimulatedCharge.filter(transaction_id=txn).update(
        settles_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    status = await gateway.query(txn)
    assert (status.state, status.failure_reason, status.retryable) == (
        "failed",
        "Card declined",
        True,
    )


@pytest.mark.parametrize(
    ("provider", "method", "instrument"),
    [
        ("simulated", "credit_card", {"card_number": "4242 4242 4242 4242"}),
        ("simupi", "upi", {"upi_id": "success@upi"}),
    ],
)
async def test_a_charge_asked_twice_outside_an_attempt_is_booked_once(
    held, provider, method, instrument
):
    """Handed a charge that no attempt's start booked (`recorded` false), each simulator
    books it itself, once however often it is asked."""
    gateway = held.extensions["railserve.gateways"].gateway_for(provider)
    txn = "TXN" + secrets.token_hex(8).upper()
    request = ChargeRequest(txn, 12500, "INR", method, instrument)
    await gateway.charge(request)
    await gateway.charge(request)
    (row,) = await SimulatedCharge.filter(transaction_id=txn)
    assert (row.provider, row.amount, row.succeeded) == (provider, 12500, True)
    assert (await gateway.query(txn)).state == "pending"


async def test_an_attempt_and_the_gateways_record_of_it_commit_together(held):
    """The start books the simulator's charge with the attempt; `charge` adds nothing."""
    person = await Passenger.sign_up(held)
    txn = await person.start(await person.book(await make_train()))
    payment = await Payment.get(transaction_id=txn)
    (row,) = await SimulatedCharge.filter(transaction_id=txn)
    assert (row.provider, row.amount, row.currency) == ("simulated", payment.amount, "INR")
    assert (await simulated(held).query(txn)).state == "pending"
