"""SimUPI's refusals: malformed webhook bodies, refunds it cannot take, what it reports."""

from __future__ import annotations

import json
import secrets
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from railserve.payment.models import Payment
from railserve.payment.providers import RefundRequest, simupi
from railserve.payment.providers.models import SimulatedCharge
from tests.payment.providers.test_simupi import NEW, OLD, UPI_DECLINED, UPI_OK, collect, post
from tests.support.passenger import Passenger, make_train


@pytest.fixture
def settings(settings):
    return replace(settings, simupi_webhook_secret=f"{NEW},{OLD}")


@pytest.fixture
async def held(app_with, settings):
    async with app_with(settings, gateway_delay=60.0) as app:
        yield app


def simupi_gateway(app):
    return app.extensions["railserve.gateways"].gateway_for("simupi")


def envelope(event, payload) -> bytes:
    return json.dumps({"event": event, "payload": payload}).encode()


async def test_malformed_signed_bodies_are_400_and_change_nothing(held):
    """A correctly signed body SimUPI could not have sent is refused, not applied."""
    person = await Passenger.sign_up(held)
    txn = await person.start(await person.book(await make_train()), UPI_OK)
    good_id = "sue_" + secrets.token_hex(8)
    bodies = [
        b"\xff\xfe not utf-8",
        json.dumps(["event", "payload"]).encode(),
        envelope("collect.approved", "not a dict"),
        envelope("collect.approved", {"transaction_id": txn}),  # no event_id
        envelope("collect.approved", {"event_id": "evt with spaces", "transaction_id": txn}),
        envelope("refund.processed", {"event_id": good_id, "status": "maybe"}),
    ]
    for body in bodies:
        response = await post(held, body)
        assert response.status_code == 400, body
    assert (await Payment.get(transaction_id=txn)).status == "pending"


def test_an_empty_key_in_the_rotation_never_verifies():
    """A blank secret (e.g. a trailing comma in the setting) cannot sign anything."""
    body = b"{}"
    assert simupi.verify(simupi.signature(NEW, body), body, ["", NEW])
    assert not simupi.verify(simupi.signature("", body), body, [""])
    assert not simupi.verify("a" * 201, body, [NEW])


async def test_refunds_without_an_approved_collect_are_refused(held):
    """No collect, a declined collect, another currency or too much: SimUPI says no."""
    gateway = simupi_gateway(held)
    person = await Passenger.sign_up(held)
    approved = await person.start(await person.book(await make_train()), UPI_OK)
    declined = await person.start(await person.book(await make_train()), UPI_DECLINED)
    charge = await SimulatedCharge.get(transaction_id=approved)

    def ask(txn, amount=100, currency="INR"):
        return gateway.refund(RefundRequest("RF" + secrets.token_hex(6), 1, txn, amount, currency))

    for result, reason in [
        (await ask("TXN-nobody"), "No approved collect to refund"),
        (await ask(declined), "No approved collect to refund"),
        (await ask(approved, currency="USD"), "The refund currency does not match"),
        (await ask(approved, charge.amount + 1), "The refund exceeds what was collected"),
    ]:
        assert (result.ok, result.reason) == (False, reason)
    assert (await gateway.query_refund("RF-never-asked")).state == "unknown"


async def test_query_reports_unknown_pending_and_failed(held):
    """Reconciliation hears what SimUPI's ledger says, including the decline's reason."""
    gateway = simupi_gateway(held)
    person = await Passenger.sign_up(held)
    declined = await person.start(await person.book(await make_train()), UPI_DECLINED)
    assert (await gateway.query("TXN-nobody")).state == "unknown"
    assert (await gateway.query(declined)).state == "pending"
    await SimulatedCharge.filter(transaction_id=declined).update(
        settles_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    status = await gateway.query(declined)
    assert (status.state, status.failure_reason, status.retryable) == (
        "failed",
        "Declined by bank",
        True,
    )


async def test_upi_test_triggers_are_offered(held):
    """The pay page's test hints for UPI come from SimUPI."""
    triggers = simupi_gateway(held).test_triggers()
    assert ("UPI", "success@upi", "success") in triggers
    assert any(t[1] == "failure@upi" for t in triggers)


async def test_a_collect_event_for_a_failed_refund_status_is_applied_as_refund_failed(held):
    """`refund.processed` with status failed is translated to RailServe's refund.failed."""
    body = collect("TXN0", "refund.processed", refund_id="RF1", status="failed")
    event = simupi.translate(body)
    assert (event["type"], event["refund_id"]) == ("refund.failed", "RF1")


async def test_the_same_refund_attempt_asked_twice_is_one_upi_refund(held):
    """SimUPI keys refunds by (refund_id, attempt): asking again returns the same one."""
    gateway = simupi_gateway(held)
    person = await Passenger.sign_up(held)
    txn = await person.start(await person.book(await make_train()), UPI_OK)
    request = RefundRequest("RFUPITWICE", 1, txn, 100, "INR")
    first, again = await gateway.refund(request), await gateway.refund(request)
    assert first.ok and again.ok and first.reference == again.reference
    assert first.reference.startswith("UPIR")
    state = await gateway.query_refund("RFUPITWICE")
    assert (state.state, state.attempt, state.reference) == ("pending", 1, first.reference)


def test_an_ordinary_upi_id_follows_the_seeded_rate(held, settings):
    """Only the test ids are triggers; any other UPI id is decided by seed and rate."""
    from railserve.payment.providers import ChargeRequest

    gateway = simupi_gateway(held)
    request = ChargeRequest("TXN0000000000000001", 100, "INR", "upi", {"upi_id": "someone@bank"})
    assert gateway.decide(request) == simupi.decide(
        settings.gateway_seed, request.transaction_id, settings.gateway_success_rate
    )
