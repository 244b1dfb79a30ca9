"""The simulated gateway: deterministic outcomes, triggers, success rate."""

import pytest

from railserve.payment.providers.simulated import random_outcome, trigger_for
from railserve.payment.signature import sign, verify


def test_same_seed_and_id_give_the_same_outcome():
    for index in range(200):
        txn = f"TXN{index:016d}"
        assert random_outcome("seed", txn, 0.5) == random_outcome("seed", txn, 0.5)


def test_seed_changes_outcomes():
    ids = [f"TXN{index:016d}" for index in range(200)]
    one = [random_outcome("a", txn, 0.5).succeeded for txn in ids]
    two = [random_outcome("b", txn, 0.5).succeeded for txn in ids]
    assert one != two


def test_success_share_follows_the_rate():
    draws = [random_outcome("rate", f"TXN{i:016X}", 0.9) for i in range(2000)]
    share = sum(d.succeeded for d in draws) / len(draws)
    assert 0.87 <= share <= 0.93
    assert all(d.reason and d.retryable is not None for d in draws if not d.succeeded)


@pytest.mark.parametrize(
    ("method", "fields", "succeeded", "reason"),
    [
        ("credit_card", {"card_number": "4242 4242 4242 4242"}, True, None),
        ("debit_card", {"card_number": "4242-4242-4242-4242"}, True, None),
        ("credit_card", {"card_number": "4000000000000002"}, False, "Card declined"),
        ("credit_card", {"card_number": "4000 0000 0000 9995"}, False, "Insufficient funds"),
        ("upi", {"upi_id": "success@upi"}, True, None),
        ("upi", {"upi_id": "failure@upi"}, False, "Declined by bank"),
    ],
)
def test_triggers(method, fields, succeeded, reason):
    outcome = trigger_for(method, fields)
    assert outcome is not None
    assert outcome.succeeded is succeeded
    assert outcome.reason == reason


def test_other_instruments_follow_the_rate():
    assert trigger_for("credit_card", {"card_number": "5555555555554444"}) is None
    assert trigger_for("net_banking", {}) is None
    assert trigger_for("upi", {"upi_id": "someone@okbank"}) is None


def test_signature_round_trip_and_tolerance():
    body = b'{"id": "evt_1"}'
    header = sign("secret", body, 1_000_000)
    assert verify(header, body, ["secret"], 1_000_000 + 299)
    assert not verify(header, body, ["secret"], 1_000_000 + 301)
    assert not verify(header, body, ["secret"], 1_000_000 - 301)
    assert not verify(header, body + b" ", ["secret"], 1_000_000)
    assert not verify(header, body, ["other"], 1_000_000)
    rotated = header + ",v1=" + "0" * 64
    assert verify(rotated, body, ["secret"], 1_000_000)
    assert not verify(None, body, ["secret"], 1_000_000)
    assert not verify("garbage", body, ["secret"], 1_000_000)


async def test_card_0119_is_a_processing_error_and_nothing_is_charged(app, passenger, train):
    from railserve.payment.models import Payment
    from railserve.payment.providers.models import SimulatedCharge
    from tests.support.passenger import card

    final = await passenger.pay(await passenger.book(train), card("4000 0000 0000 0119"))
    assert (final["status"], final["gateway"]) == ("failed", "simulated")
    assert final["failure_reason"] == "Processing error at the payment gateway: nothing was charged"
    assert "try again in a minute" in final["advice"].lower()
    payment = await Payment.get(transaction_id=final["transaction_id"])
    assert payment.retryable is True
    assert not await SimulatedCharge.exists(transaction_id=payment.transaction_id)
    # An error of the gateway, not a decline: it counts against its breaker.
    assert app.extensions["railserve.gateways"].breakers["simulated"].failures == 1
    again = await passenger.pay(payment.booking_id)  # retryable: the next card goes through
    assert again["status"] == "success"
    assert app.extensions["railserve.gateways"].breakers["simulated"].failures == 0
