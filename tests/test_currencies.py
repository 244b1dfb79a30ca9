"""Trains priced in any ISO 4217 currency: paid and refunded in exact minor units.

JPY has no minor digits and BHD three: the pay form's `amount`, every JSON amount and the
gateways' webhooks carry the currency's own digits, and pages format with Babel.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from railserve.models import Booking, Train
from railserve.payment.models import Payment, Refund
from railserve.payment.providers.models import SimulatedCharge, SimulatedRefund
from tests.support.passenger import JSON, card
from tests.support.server import railserve
from tests.support.waiting import eventually


async def priced_train(fare: int, currency: str) -> Train:
    return await Train.create(
        number=uuid.uuid4().hex[:8].upper(),
        name="Currency Express",
        origin="Mumbai",
        destination="Pune",
        departs_at=datetime.now(UTC) + timedelta(days=3),  # > 48 h: the flat charge
        total_seats=10,
        seats_left=10,
        fare=fare,
        currency=currency,
    )


async def settled_refund(refund_id: str) -> Refund:
    refund = await eventually(
        lambda: Refund.get(refund_id=refund_id), lambda r: r.status != "pending"
    )
    assert refund.status != "pending", f"refund {refund_id} still pending"
    return refund


@pytest.mark.parametrize(
    ("currency", "fare", "fare_text", "shown", "charge", "gst", "refund"),
    [
        # 3A, more than 48 h out: the flat charge is an INR amount, so a train in another
        # currency bears none (only percentages apply, and this window has none).
        ("JPY", 1250, "1250", "JP¥1,250", "0", "0", "1250"),
        ("BHD", 250750, "250.750", "BHD250.750", "0.000", "0.000", "250.750"),
    ],
)
async def test_paid_and_refunded_with_exact_amounts(
    passenger, currency, fare, fare_text, shown, charge, gst, refund
):
    train = await priced_train(fare, currency)
    booking_id = await passenger.book(train)
    pay_page = await passenger.text(f"/payment/pay/{booking_id}")
    assert f'name="amount" value="{fare_text}"' in pay_page
    assert shown in pay_page

    final = await passenger.pay(booking_id, card())
    assert (final["status"], final["amount"], final["currency"]) == ("success", fare_text, currency)
    assert final["refunded_amount"] == ("0" if currency == "JPY" else "0.000")
    payment = await Payment.get(transaction_id=final["transaction_id"])
    assert (payment.amount, payment.currency) == (fare, currency)
    assert (await SimulatedCharge.get(transaction_id=payment.transaction_id)).amount == fare

    quote = await passenger.get(f"/bookings/{booking_id}/cancel", JSON)
    offer = await quote.get_json()
    assert (offer["charge"], offer["gst"], offer["refund"]) == (charge, gst, refund)
    response = await passenger.post(
        f"/bookings/{booking_id}/cancel", {"expected_refund": offer["refund"]}
    )
    assert response.status_code == 303, await response.get_data(as_text=True)
    made = await Refund.get(payment_id=payment.id)
    assert (await settled_refund(made.refund_id)).status == "succeeded"
    expected = fare - int(charge.replace(".", "")) - int(gst.replace(".", ""))
    assert made.amount == expected
    ledger = await SimulatedRefund.get(refund_id=made.refund_id)
    assert (ledger.amount, ledger.currency) == (expected, currency)
    after = await passenger.status(payment.transaction_id)
    assert (after["status"], after["refunded_amount"]) == ("refunded", refund)
    assert (await Booking.get(id=booking_id)).status == "cancelled"


async def test_amount_field_uses_the_currency_digits(passenger):
    train = await priced_train(1250, "JPY")
    booking_id = await passenger.book(train)
    form = {**await passenger.pay_form(booking_id), **card(), "amount": "1250.00"}
    response = await passenger.post(f"/payment/process/{booking_id}", form)
    assert response.status_code == 422
    assert "1250" in await response.get_data(as_text=True)
    assert not await Payment.exists(booking_id=booking_id)


@pytest.fixture
def env(database_url):
    return {**os.environ, "RAILSERVE_DATABASE_URL": database_url, "RAILSERVE_ENV": "development"}


def add(env, number: str, *extra: str):
    return railserve(
        "add-train",
        *("--number", number, "--name", "Hikari", "--origin", "Tokyo", "--destination", "Osaka"),
        *("--departs", "2031-01-05T08:30", "--seats", "10"),
        *extra,
        env=env,
    )


def test_add_train_takes_a_currency_and_its_digits(env):
    assert railserve("init-db", env=env).returncode == 0
    assert add(env, "JP1", "--fare", "13320", "--currency", "JPY").returncode == 0
    assert add(env, "BH1", "--fare", "12.500", "--currency", "BHD").returncode == 0
    assert add(env, "US1", "--fare", "99.95", "--currency", "USD").returncode == 0
    assert add(env, "IN1", "--fare", "1250.00").returncode == 0  # INR by default
    refused = add(env, "JP2", "--fare", "13320.50", "--currency", "JPY")
    assert refused.returncode == 2 and "no decimals" in refused.stderr
    refused = add(env, "BH2", "--fare", "12.5000", "--currency", "BHD")
    assert refused.returncode == 2 and "three decimals" in refused.stderr
    refused = add(env, "XX1", "--fare", "10", "--currency", "XYZ")
    assert refused.returncode == 2 and "ISO 4217" in refused.stderr

    async def rows():
        from railserve import db

        await db.init(env["RAILSERVE_DATABASE_URL"])
        try:
            return sorted(await Train.all().values_list("number", "fare", "currency"))
        finally:
            await db.close()

    assert asyncio.run(rows()) == [
        ("BH1", 12500, "BHD"),
        ("IN1", 125000, "INR"),
        ("JP1", 13320, "JPY"),
        ("US1", 9995, "USD"),
    ]
