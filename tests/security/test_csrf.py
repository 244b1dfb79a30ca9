"""CSRF: every state-changing route refuses a missing or wrong token and writes nothing.

Each case first sends the forged requests (no token, a wrong one, an empty one, another
session's valid token), then the same request with the right token, which must go through:
so the 403 is the token's doing, not some other refusal.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from railserve.models import Booking, Notification, User
from railserve.payment.models import Payment
from tests.security.helpers import post_form, snapshot, visitor
from tests.support.passenger import PASSWORD, Passenger, card


@dataclass
class Case:
    """Who posts what where, and how to tell that it took effect."""

    person: Passenger
    path: str
    form: dict[str, Any]
    took_effect: Callable[[], Awaitable[bool]]


async def _logged_in(person: Passenger) -> bool:
    return (await person.get("/profile")).status_code == 200


async def register(app, passenger, train) -> Case:
    person = await visitor(app, "/auth/register")
    form = {"name": "Forged", "email": "forged@example.com", "password": PASSWORD}
    return Case(person, "/auth/register", form, lambda: User.exists(email="forged@example.com"))


async def login(app, passenger, train) -> Case:
    person = await visitor(app)
    form = {"email": passenger.email, "password": PASSWORD}
    return Case(person, "/auth/login", form, lambda: _logged_in(person))


async def logout(app, passenger, train) -> Case:
    async def logged_out() -> bool:
        return not await _logged_in(passenger)

    return Case(passenger, "/auth/logout", {}, logged_out)


async def book(app, passenger, train) -> Case:
    form = {"train_id": str(train.id), "passenger_name": ["Forged Rider"]}
    return Case(passenger, "/bookings", form, lambda: Booking.exists(user_id=passenger.user_id))


async def cancel_booking(app, passenger, train) -> Case:
    booking_id = await passenger.book(train)

    async def cancelled() -> bool:
        return (await Booking.get(id=booking_id)).status == "cancelled"

    return Case(passenger, f"/bookings/{booking_id}/cancel", {}, cancelled)


async def read_notifications(app, passenger, train) -> Case:
    await Notification.create(user_id=passenger.user_id, kind="test", message="Hello")

    async def all_read() -> bool:
        return not await Notification.exists(user_id=passenger.user_id, read=False)

    return Case(passenger, "/notifications/read", {}, all_read)


async def process(app, passenger, train) -> Case:
    booking_id = await passenger.book(train)
    form = {**await passenger.pay_form(booking_id), **card()}
    return Case(
        passenger,
        f"/payment/process/{booking_id}",
        form,
        lambda: Payment.exists(booking_id=booking_id),
    )


async def cancel_attempt(app, passenger, train) -> Case:
    transaction_id = await passenger.start(await passenger.book(train))

    async def cancelled() -> bool:
        return (await Payment.get(transaction_id=transaction_id)).status == "cancelled"

    return Case(passenger, f"/payment/cancel/{transaction_id}", {}, cancelled)


ROUTES = [register, login, logout, book, cancel_booking, read_notifications, process]
ROUTES.append(cancel_attempt)


@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.__name__)
async def test_forged_requests_are_refused_and_change_nothing(app, passenger, train, route, htmx):
    case = await route(app, passenger, train)
    stranger = await visitor(app)  # holds a valid token, of another session
    before = await snapshot()
    forged_tokens = [None, "", "not-the-token", case.person.csrf[:-1], stranger.csrf]

    for token in forged_tokens:
        response = await post_form(case.person.client, case.path, case.form, token=token, htmx=htmx)
        assert response.status_code == 403, (token, await response.get_data(as_text=True))
        assert "security token" in await response.get_data(as_text=True)
    # A token in the form does not excuse a wrong one in the header.
    response = await post_form(
        case.person.client,
        case.path,
        {**case.form, "csrf_token": case.person.csrf},
        token="wrong",
        htmx=True,
    )
    assert response.status_code == 403

    assert await snapshot() == before
    assert not await case.took_effect()

    response = await post_form(
        case.person.client, case.path, case.form, token=case.person.csrf, htmx=htmx
    )
    assert response.status_code in (200, 303), await response.get_data(as_text=True)
    assert await case.took_effect()


async def test_a_session_without_a_token_cannot_post(app, passenger):
    """A client that never loaded a page has no token to send; it is refused, not let in."""
    client = app.test_client()
    response = await post_form(
        client, "/auth/login", {"email": passenger.email, "password": PASSWORD}
    )
    assert response.status_code == 403
    assert (await client.get("/profile")).status_code == 303


async def test_the_webhook_needs_no_session_token(app):
    """The gateway has no session: its callback is signed instead (see test_webhook)."""
    response = await app.test_client().post("/payment/webhook", data=b"{}")
    assert response.status_code == 401
