"""Paying in parts through the app: the plan choice, the deposit, the balance, one success
per part (PRODUCT.md "Paying in parts")."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from railserve.invariants import violations
from railserve.models import Booking, Train
from railserve.payment.models import PartStatus, Payment, PaymentPart, PaymentStatus
from tests.support.passenger import CARD_DECLINED, card

TWO = ["Asha Rao", "Vikram Rao"]


@pytest.fixture(autouse=True)
async def invariants_hold(app):
    yield
    assert await violations() == []


async def far_train(seats: int = 100, fare: int = 125050, days: float = 30) -> Train:
    """A 3A train 30 days out: two passengers at ₹1,250.50 make ₹2,501.00."""
    return await Train.create(
        number=uuid.uuid4().hex[:8].upper(),
        name="Deccan Queen",
        origin="Mumbai",
        destination="Pune",
        departs_at=datetime.now(UTC) + timedelta(days=days),
        total_seats=seats,
        seats_left=seats,
        fare=fare,
        travel_class="3A",
    )


async def plan_form(passenger, booking_id: int, plan: str) -> dict[str, str]:
    """The hidden fields of the pay form rendered for `plan` (`?plan=`)."""
    html = await passenger.text(f"/payment/pay/{booking_id}?plan={plan}")
    key = re.search(r'name="idempotency_key" value="([^"]+)"', html)
    amount = re.search(r'name="amount" value="([^"]+)"', html)
    chosen = re.search(r'type="hidden" name="plan" value="([^"]+)"', html)
    assert key and amount, html[:2000]
    form = {"idempotency_key": key.group(1), "amount": amount.group(1)}
    if chosen:
        form["plan"] = chosen.group(1)
    return form


async def pay_with(passenger, booking_id: int, form: dict[str, str], instrument=None) -> dict:
    response = await passenger.post(
        f"/payment/process/{booking_id}", {**form, **(instrument or card())}
    )
    assert response.status_code == 303, await response.get_data(as_text=True)
    return await passenger.wait_final(response.headers["Location"].rsplit("/", 1)[-1])


async def test_pay_page_offers_the_plans_full_checked(passenger):
    train = await far_train()
    booking_id = await passenger.book(train, TWO)
    html = await passenger.text(f"/payment/pay/{booking_id}")
    radios = re.findall(r'<input type="radio" name="plan" value="([a-z]+)"( checked)?', html)
    assert ("full", " checked") in radios and ("deposit", "") in radios
    assert "₹625.25 now · ₹1,875.75 by" in html
    form = await plan_form(passenger, booking_id, "deposit")
    assert form["amount"] == "625.25" and form["plan"] == "deposit"
    partial = await passenger.text(
        f"/payment/pay/{booking_id}?plan=deposit", {"HX-Request": "true"}
    )
    assert "<html" not in partial.lower() and 'value="625.25"' in partial


async def test_no_choice_when_only_full(passenger, train):
    booking_id = await passenger.book(train)  # 3 days out: no plan but full
    html = await passenger.text(f"/payment/pay/{booking_id}")
    assert 'name="plan" value="full"' in html  # carried in the form
    assert 'type="radio" name="plan"' not in html


async def test_deposit_then_balance_confirmed(passenger):
    train = await far_train()
    booking_id = await passenger.book(train, TWO)
    first = await pay_with(passenger, booking_id, await plan_form(passenger, booking_id, "deposit"))
    assert (first["status"], first["booking_status"], first["amount"]) == (
        "success",
        "confirmed",
        "625.25",
    )
    assert first["part"] == {"seq": 1, "of": 2}
    plan = first["plan"]
    assert (plan["name"], plan["paid"], plan["due"]) == ("deposit", "625.25", "1875.75")
    assert [(p["seq"], p["amount"], p["status"]) for p in plan["parts"]] == [
        (1, "625.25", "paid"),
        (2, "1875.75", "due"),
    ]
    assert plan["parts"][0]["due_at"] is None and plan["parts"][1]["due_at"].endswith("Z")

    card_html = await passenger.text(
        f"/payment/status/{first['transaction_id']}", {"HX-Request": "true"}
    )
    assert "Part 1 of 2 · balance ₹1,875.75 due by" in card_html
    profile = await passenger.text("/profile")
    assert "Balance ₹1,875.75 due by" in profile
    receipt = await passenger.text(f"/payment/receipt/{first['transaction_id']}")
    assert "Part 1 of 2" in receipt and "₹1,875.75" in receipt

    form = await passenger.pay_form(booking_id)
    assert form["amount"] == "1875.75"
    second = await pay_with(passenger, booking_id, form)
    assert second["status"] == "success" and second["part"] == {"seq": 2, "of": 2}
    assert (second["plan"]["paid"], second["plan"]["due"]) == ("2501.00", "0.00")
    assert second["booking_status"] == "confirmed"
    receipt = await passenger.text(f"/payment/receipt/{second['transaction_id']}")
    assert "Part 2 of 2" in receipt and "paid in full" in receipt
    response = await passenger.get(f"/payment/pay/{booking_id}")
    assert response.status_code == 303 and response.headers["Location"].endswith("/profile")
    assert "Balance" not in await passenger.text("/profile")
    train = await Train.get(id=train.id)
    assert train.seats_left == 98


async def test_deposit_then_balance_waitlisted(passenger, new_passenger):
    train = await far_train(seats=1)
    booking_id = await passenger.book(train, TWO)
    first = await pay_with(passenger, booking_id, await plan_form(passenger, booking_id, "deposit"))
    assert (first["booking_status"], first["part"]) == ("waitlisted", {"seq": 1, "of": 2})
    second = await pay_with(passenger, booking_id, await passenger.pay_form(booking_id))
    assert second["status"] == "success" and second["part"] == {"seq": 2, "of": 2}
    assert second["booking_status"] == "waitlisted"


async def test_amount_must_be_the_parts(passenger):
    train = await far_train()
    booking_id = await passenger.book(train, TWO)
    form = {**await plan_form(passenger, booking_id, "deposit"), "amount": "2501.00"}
    response = await passenger.post(f"/payment/process/{booking_id}", {**form, **card()})
    assert response.status_code == 422
    assert not await Payment.filter(booking_id=booking_id).exists()
    form = {**await plan_form(passenger, booking_id, "thirds"), "plan": "nosuch"}
    response = await passenger.post(f"/payment/process/{booking_id}", {**form, **card()})
    assert response.status_code == 422


async def test_plan_ignored_after_the_first_part(passenger):
    train = await far_train()
    booking_id = await passenger.book(train, TWO)
    await pay_with(passenger, booking_id, await plan_form(passenger, booking_id, "deposit"))
    form = {**await passenger.pay_form(booking_id), "plan": "full", "amount": "2501.00"}
    response = await passenger.post(f"/payment/process/{booking_id}", {**form, **card()})
    assert response.status_code == 422  # the balance is what is due, whatever the plan says
    form = {**await passenger.pay_form(booking_id), "plan": "thirds"}
    second = await pay_with(passenger, booking_id, form)
    assert second["part"] == {"seq": 2, "of": 2} and second["plan"]["name"] == "deposit"


async def test_a_failed_deposit_leaves_the_plan_open(passenger):
    train = await far_train()
    booking_id = await passenger.book(train, TWO)
    form = await plan_form(passenger, booking_id, "deposit")
    failed = await pay_with(passenger, booking_id, form, card(CARD_DECLINED))
    assert failed["status"] == "failed" and failed["part"] == {"seq": 1, "of": 2}
    paid = await pay_with(passenger, booking_id, await plan_form(passenger, booking_id, "full"))
    assert (paid["status"], paid["amount"], paid["part"], paid["plan"]) == (
        "success",
        "2501.00",
        None,
        None,
    )
    booking = await Booking.get(id=booking_id)
    assert booking.plan == "full"
    statuses = await PaymentPart.filter(booking_id=booking_id).values_list("status", flat=True)
    assert set(statuses) == {PartStatus.CANCELLED}


@pytest.mark.parametrize("posts", [8])
async def test_many_posts_for_one_part_one_success(passenger, posts):
    train = await far_train()
    booking_id = await passenger.book(train, TWO)
    await pay_with(passenger, booking_id, await plan_form(passenger, booking_id, "deposit"))
    forms = [await passenger.pay_form(booking_id) for _ in range(posts)]
    responses = await asyncio.gather(
        *(passenger.post(f"/payment/process/{booking_id}", {**f, **card()}) for f in forms)
    )
    assert {r.status_code for r in responses} <= {303, 409}
    for response in responses:
        if response.status_code == 303:
            await passenger.wait_final(response.headers["Location"].rsplit("/", 1)[-1])
    part = await PaymentPart.get(booking_id=booking_id, seq=2)
    succeeded = await Payment.filter(part_id=part.id, status=PaymentStatus.SUCCESS).count()
    assert succeeded == 1 and part.status == PartStatus.PAID


async def test_a_failed_balance_offers_a_retry_of_the_balance(passenger):
    train = await far_train()
    booking_id = await passenger.book(train, TWO)
    await pay_with(passenger, booking_id, await plan_form(passenger, booking_id, "deposit"))
    failed = await pay_with(
        passenger, booking_id, await passenger.pay_form(booking_id), card(CARD_DECLINED)
    )
    assert failed["status"] == "failed" and failed["part"] == {"seq": 2, "of": 2}
    assert failed["booking_status"] == "confirmed"
    card_html = await passenger.text(
        f"/payment/status/{failed['transaction_id']}", {"HX-Request": "true"}
    )
    assert "Try again" in card_html and 'name="amount" value="1875.75"' in card_html
    second = await pay_with(passenger, booking_id, await passenger.pay_form(booking_id))
    assert second["status"] == "success" and second["plan"]["due"] == "0.00"


async def test_thirds_paid_part_by_part(passenger):
    train = await far_train(fare=160000)  # two passengers: ₹3,200.00, 30 days out
    booking_id = await passenger.book(train, TWO)
    first = await pay_with(passenger, booking_id, await plan_form(passenger, booking_id, "thirds"))
    amounts = [p["amount"] for p in first["plan"]["parts"]]
    assert amounts == ["1088.00", "1056.00", "1056.00"] and first["part"] == {"seq": 1, "of": 3}
    second = await pay_with(passenger, booking_id, await passenger.pay_form(booking_id))
    assert second["part"] == {"seq": 2, "of": 3} and second["plan"]["due"] == "1056.00"
    third = await pay_with(passenger, booking_id, await passenger.pay_form(booking_id))
    assert third["part"] == {"seq": 3, "of": 3} and third["plan"]["paid"] == "3200.00"


async def test_the_database_refuses_a_second_success_for_a_part(passenger):
    from tortoise.exceptions import IntegrityError

    from railserve.payment import service

    train = await far_train()
    booking_id = await passenger.book(train, TWO)
    await pay_with(passenger, booking_id, await plan_form(passenger, booking_id, "deposit"))
    first = await PaymentPart.get(booking_id=booking_id, seq=1)
    with pytest.raises(IntegrityError):
        await Payment.create(
            transaction_id=service.new_transaction_id(),
            booking_id=booking_id,
            user_id=passenger.user_id,
            method="upi",
            amount=first.amount,
            currency="INR",
            instrument="a@b",
            idempotency_key="second-success-for-part-1",
            status=PaymentStatus.SUCCESS,
            part_id=first.id,
            part_success_lock=first.id,
        )
