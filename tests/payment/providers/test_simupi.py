"""SimUPI end to end: UPI attempts go to it, and its own signed webhook settles them."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import replace

import pytest

from railserve.models import Booking
from railserve.payment.models import Payment, PaymentEvent, WebhookEvent
from railserve.payment.providers import simupi
from railserve.payment.providers.models import SimulatedCharge
from tests.support.passenger import Passenger, card, make_train

OLD, NEW = "simupi-old-secret", "simupi-new-secret"
UPI_OK = {"method": "upi", "upi_id": "success@upi"}
UPI_DECLINED = {"method": "upi", "upi_id": "failure@upi"}


@pytest.fixture
def settings(settings):
    """Rotation in progress: the new secret signs, the old one still verifies."""
    return replace(settings, simupi_webhook_secret=f"{NEW},{OLD}")


@pytest.fixture
async def held(app_with, settings):
    """An app whose simulators take a minute: the test plays SimUPI's webhook."""
    async with app_with(settings, gateway_delay=60.0) as app:
        yield app


def collect(txn: str, kind: str = "collect.approved", **payload) -> bytes:
    body = {
        "event": kind,
        "payload": {
            "event_id": "sue_" + secrets.token_hex(8),
            "transaction_id": txn,
            "amount": "1250.00",
            "currency": "INR",
            "reason": "Declined by bank" if kind == "collect.declined" else None,
            "reference": "UPI123456789012",
            "created": int(time.time()),
            **payload,
        },
    }
    return json.dumps(body).encode()


async def post(app, body: bytes, secret: str | None = NEW, header: str | None = None):
    headers = {"Content-Type": "application/json"}
    if secret is not None or header is not None:
        headers["X-SimUPI-Signature"] = header or simupi.signature(secret, body)
    return await app.test_client().post("/payment/webhook/simupi", data=body, headers=headers)


async def test_upi_in_the_app_goes_to_simupi_and_succeeds(passenger, train):
    booking_id = await passenger.book(train)
    final = await passenger.pay(booking_id, UPI_OK)
    assert (final["status"], final["gateway"], final["booking_status"]) == (
        "success",
        "simupi",
        "confirmed",
    )
    payment = await Payment.get(transaction_id=final["transaction_id"])
    assert payment.gateway == "simupi"
    charge = await SimulatedCharge.get(transaction_id=payment.transaction_id)
    assert charge.provider == "simupi"
    # Its own webhook format was applied, de-duplicated under its own id.
    assert await WebhookEvent.filter(
        transaction_id=payment.transaction_id, id__startswith="evt_simupi_"
    ).exists()
    receipt = await passenger.text(f"/payment/receipt/{payment.transaction_id}")
    assert "UPI" in receipt and "simupi" not in receipt  # a passenger reads the method only
    assert "simupi" in await passenger.text("/profile")


async def test_failure_at_upi_is_declined_by_bank(passenger, train):
    final = await passenger.pay(await passenger.book(train), UPI_DECLINED)
    assert final["status"] == "failed" and final["gateway"] == "simupi"
    assert final["failure_reason"] == "Declined by bank"


async def test_a_card_in_the_same_app_goes_to_simulated(passenger, train):
    final = await passenger.pay(await passenger.book(train), card())
    assert (final["status"], final["gateway"]) == ("success", "simulated")


async def test_bad_signature_is_401_and_changes_nothing(held):
    person = await Passenger.sign_up(held)
    txn = await person.start(await person.book(await make_train()), UPI_OK)
    body = collect(txn)
    for response in (
        await post(held, body, secret=None),
        await post(held, body, secret="not-the-secret"),
        await post(held, body, header="00" * 32),
        await post(held, collect(txn), header=simupi.signature(NEW, body)),
    ):
        assert response.status_code == 401
    assert (await Payment.get(transaction_id=txn)).status == "pending"


async def test_rotation_old_and_new_secrets_are_both_accepted(held):
    person = await Passenger.sign_up(held)
    first = await person.start(await person.book(await make_train()), UPI_OK)
    second = await person.start(await person.book(await make_train()), UPI_OK)
    assert (await post(held, collect(first), secret=NEW)).status_code == 200
    assert (await post(held, collect(second), secret=OLD)).status_code == 200
    assert (await person.status(first))["status"] == "success"
    assert (await person.status(second))["status"] == "success"


async def test_replay_is_applied_once(held):
    person = await Passenger.sign_up(held)
    txn = await person.start(await person.book(await make_train()), UPI_OK)
    body = collect(txn, "collect.declined")
    assert (await post(held, body)).status_code == 200
    assert (await post(held, body)).status_code == 200
    payment = await Payment.get(transaction_id=txn)
    assert payment.status == "failed"
    events = await PaymentEvent.filter(payment_id=payment.id, event="fail").count()
    assert events == 1
    assert await WebhookEvent.filter(transaction_id=txn).count() == 1


async def test_wrong_amount_is_409_and_unknown_events_400(held):
    person = await Passenger.sign_up(held)
    txn = await person.start(await person.book(await make_train()), UPI_OK)
    assert (await post(held, collect(txn, amount="1.00"))).status_code == 409
    assert (await post(held, collect(txn, kind="collect.maybe"))).status_code == 400
    assert (await post(held, b"not json")).status_code == 400
    assert (await Payment.get(transaction_id=txn)).status == "pending"


async def test_simupi_events_cannot_settle_another_gateways_attempt(held):
    person = await Passenger.sign_up(held)
    txn = await person.start(await person.book(await make_train()), card())
    assert (await post(held, collect(txn))).status_code == 404
    assert (await Payment.get(transaction_id=txn)).status == "pending"
    booking = await Booking.get(id=(await Payment.get(transaction_id=txn)).booking_id)
    assert booking.status == "pending_payment"


def test_outcomes_are_a_pure_function_of_seed_and_id():
    ids = [f"TXN{i:016d}" for i in range(300)]
    first = [simupi.decide("seed", txn, 0.5) for txn in ids]
    assert first == [simupi.decide("seed", txn, 0.5) for txn in ids]
    assert first != [simupi.decide("other", txn, 0.5) for txn in ids]
    assert all(simupi.decide("s", txn, 1.0) is None for txn in ids)


async def test_sweep_and_refunds_ask_the_attempts_own_gateway(held, settings):
    from datetime import UTC, datetime, timedelta

    from railserve.payment.models import Refund
    from railserve.payment.providers.models import SimulatedRefund
    from railserve.sweep import sweep

    person = await Passenger.sign_up(held)
    booking_id = await person.book(await make_train())
    txn = await person.start(booking_id, UPI_OK)
    # SimUPI's report is a minute away; its ledger already knows the payer approved.
    await SimulatedCharge.filter(transaction_id=txn).update(
        settles_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    gateways = held.extensions["railserve.gateways"]
    later = datetime.now(UTC) + timedelta(minutes=2)
    report = await sweep(held.config["RAILSERVE"], gateways, now=later)
    assert report.reconciled == [txn]
    assert (await Payment.get(transaction_id=txn)).status == "success"

    response = await person.post(f"/bookings/{booking_id}/cancel")
    assert response.status_code == 303
    refund = await Refund.get(payment__transaction_id=txn)
    ledger = await SimulatedRefund.get(refund_id=refund.refund_id)
    assert ledger.provider == "simupi" and ledger.reference.startswith("UPIR")
    state = await gateways.for_payment(await Payment.get(transaction_id=txn)).query_refund(
        refund.refund_id
    )
    assert state.reference == ledger.reference
    assert (await gateways.query_refund(refund.refund_id)).reference == ledger.reference


async def test_a_signed_refund_processed_event_settles_the_refund(held):
    from railserve.payment.models import Refund

    person = await Passenger.sign_up(held)
    booking_id = await person.book(await make_train())
    txn = await person.start(booking_id, UPI_OK)
    assert (await post(held, collect(txn))).status_code == 200
    assert (await person.post(f"/bookings/{booking_id}/cancel")).status_code == 303
    refund = await Refund.get(payment__transaction_id=txn)
    assert refund.status == "pending"
    amount = f"{refund.amount // 100}.{refund.amount % 100:02d}"
    body = collect(
        txn,
        "refund.processed",
        refund_id=refund.refund_id,
        amount=amount,
        status="succeeded",
        reference="UPIR0001",
    )
    assert (await post(held, body)).status_code == 200
    assert (await Refund.get(id=refund.id)).status == "succeeded"
    assert (await post(held, body)).status_code == 200  # replayed: already seen


async def test_simupi_events_are_logged_for_operators(passenger, train):
    from railserve.payment.models import WebhookLog

    final = await passenger.pay(await passenger.book(train), UPI_OK)
    entry = await WebhookLog.get(transaction_id=final["transaction_id"])
    assert (entry.provider, entry.type, entry.status_code) == ("simupi", "collect.approved", 200)
    assert entry.signature_valid and entry.event_id.startswith("sue_")


async def test_an_operator_can_replay_a_stored_simupi_event(held):
    from railserve.payment.models import WebhookLog
    from tests.ops.conftest import make_operator

    person = await Passenger.sign_up(held)
    txn = await person.start(await person.book(await make_train()), UPI_OK)
    body = collect(txn, "collect.declined")
    assert (await post(held, body)).status_code == 200
    forged = await post(held, collect(txn), secret="not-the-secret")
    assert forged.status_code == 401
    operator = await make_operator(held)
    applied, refused = await WebhookLog.filter(provider="simupi").order_by("id")
    assert (applied.signature_valid, refused.signature_valid) == (True, False)
    response = await operator.post(f"/ops/webhooks/{applied.id}/replay", {"reason": "check"})
    assert response.status_code == 303
    assert "already applied" in await operator.text(response.headers["Location"])
    response = await operator.post(f"/ops/webhooks/{refused.id}/replay", {"reason": "check"})
    assert response.status_code == 409
    assert (await Payment.get(transaction_id=txn)).status == "failed"
