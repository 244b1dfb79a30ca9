"""Trains on the home page and creating bookings."""

import re

import pytest

from railserve.models import Booking
from tests.support.passenger import make_train


async def test_home_lists_trains_with_seats_fare_and_form(passenger):
    train = await make_train(number="12951", seats=7, fare=245050)
    html = await passenger.text("/")
    block = re.search(
        r'<article class="train" id="train-12951" data-seats-left="7" data-class="3A">(.*?)</article>',
        html,
        re.S,
    )
    assert block, html
    assert "₹2,450.50" in block.group(1)
    assert f'name="train_id" value="{train.id}"' in block.group(1)
    assert 'action="/bookings"' in block.group(1)


async def test_booking_amount_is_fare_times_passengers_and_redirects_to_pay(passenger, train):
    response = await passenger.post(
        "/bookings", {"train_id": str(train.id), "passenger_name": ["A", "B", "C"]}
    )
    assert response.status_code == 303
    booking = await Booking.get(user_id=passenger.user_id)
    assert response.headers["Location"] == f"/payment/pay/{booking.id}"
    assert booking.amount == train.fare * 3
    assert booking.passengers == ["A", "B", "C"]
    assert booking.status == "pending_payment"
    assert re.fullmatch(r"[A-Z2-9]{10}", booking.pnr)


@pytest.mark.parametrize(
    "names",
    [[], [""], ["   "], ["A"] * 7, ["x" * 61], ["Asha\x00Rao"], ["ok", ""]],
)
async def test_invalid_passengers_are_422_and_write_nothing(passenger, train, names):
    response = await passenger.post(
        "/bookings", {"train_id": str(train.id), "passenger_name": names}
    )
    assert response.status_code == 422
    assert "passenger" in (await response.get_data(as_text=True)).lower()
    assert await Booking.all().count() == 0


@pytest.mark.parametrize("train_id", ["", "abc", "0", "-1", "99999", "9" * 40])
async def test_unknown_train_is_422(passenger, train, train_id):
    response = await passenger.post("/bookings", {"train_id": train_id, "passenger_name": ["A"]})
    assert response.status_code == 422
    assert await Booking.all().count() == 0


async def test_markup_in_names_is_stored_as_text_and_escaped(passenger, train):
    booking_id = await passenger.book(train, ["<script>alert(1)</script>"])
    html = await passenger.text(f"/payment/pay/{booking_id}")
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


async def test_pnrs_are_unique_across_many_bookings(passenger, train):
    for _ in range(30):
        await passenger.book(train)
    pnrs = await Booking.all().values_list("pnr", flat=True)
    assert len(set(pnrs)) == 30


async def test_profile_lists_bookings(passenger, train):
    booking_id = await passenger.book(train, ["Asha Rao", "Vikram Rao"])
    booking = await Booking.get(id=booking_id)
    html = await passenger.text("/profile")
    for text in (
        booking.pnr,
        train.number,
        "Asha Rao, Vikram Rao",
        "₹2,500.00",
        "Awaiting payment",
    ):
        assert text in html
    for heading in ("Bookings", "Payments", "Notifications", "Sent mail"):
        assert f">{heading}" in html


async def test_without_javascript_a_passenger_row_is_added_keeping_what_was_typed(passenger):
    train = await make_train(number="NOJS1")
    form = {"train_id": str(train.id), "passenger_name": ["Asha Rao", "Vikram <b>"], "rows": "3"}
    response = await passenger.post("/bookings", form)
    assert response.status_code == 200
    assert not await Booking.exists()  # nothing booked: the form came back
    html = await response.get_data(as_text=True)
    block = html.split('id="train-NOJS1"', 1)[1].split("</article>", 1)[0]
    assert block.count('name="passenger_name"') == 3
    assert 'value="Asha Rao"' in block and 'value="Vikram &lt;b&gt;"' in block
    assert 'name="rows" value="4"' in block and 'name="rows" value="2"' in block
    fewer = await passenger.post("/bookings", {**form, "rows": "1"})
    block = (await fewer.get_data(as_text=True)).split('id="train-NOJS1"', 1)[1]
    assert block.split("</article>", 1)[0].count('name="passenger_name"') == 1
    capped = await passenger.post("/bookings", {**form, "rows": "60"})
    block = (await capped.get_data(as_text=True)).split('id="train-NOJS1"', 1)[1]
    assert block.split("</article>", 1)[0].count('name="passenger_name"') == 6
