"""Authorization: every URL holding a booking or transaction id belongs to its owner.

Another passenger gets 404 (as if it did not exist); someone not logged in is sent to log
in (htmx: 401 with HX-Redirect; JSON: 401). Neither changes anything, and the owner, asked
the same, gets the real answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.security.helpers import event, post_form, send_webhook, snapshot, visitor
from tests.support.passenger import HX, JSON, PASSWORD, Passenger, card


@dataclass
class Scene:
    """An owner with a paid booking (and its receipt) and an unpaid one with a pending attempt."""

    paid_booking: int
    paid_txn: str
    open_booking: int
    pending_txn: str
    pay_form: dict[str, str]


@pytest.fixture
async def scene(app, passenger, train) -> Scene:
    paid_booking = await passenger.book(train)
    paid_txn = await passenger.start(paid_booking)
    assert (await send_webhook(app, event(paid_txn))).status_code == 200
    open_booking = await passenger.book(train)
    pay_form = {**await passenger.pay_form(open_booking), **card()}
    pending_txn = await passenger.start(open_booking)
    return Scene(paid_booking, paid_txn, open_booking, pending_txn, pay_form)


# (method, path template, headers, form?, what the owner gets)
URLS = {
    "pay page": ("GET", "/payment/pay/{open_booking}", None, False, 200),
    "process": ("POST", "/payment/process/{open_booking}", None, True, 409),
    "status page": ("GET", "/payment/status/{pending_txn}", None, False, 200),
    "status htmx": ("GET", "/payment/status/{pending_txn}", HX, False, 200),
    "status json": ("GET", "/payment/status/{pending_txn}", JSON, False, 200),
    "cancel attempt": ("POST", "/payment/cancel/{pending_txn}", None, False, 303),
    "receipt": ("GET", "/payment/receipt/{paid_txn}", None, False, 200),
    "cancel booking": ("POST", "/bookings/{paid_booking}/cancel", None, False, 303),
}


async def _ask(person: Passenger, scene: Scene, name: str, headers: dict | None = None):
    method, template, default_headers, with_form, _ = URLS[name]
    path = template.format(**vars(scene))
    headers = {**(default_headers or {}), **(headers or {})}
    if method == "GET":
        return await person.get(path, headers)
    form = scene.pay_form if with_form else {}
    htmx = headers.get("HX-Request") == "true"
    return await post_form(person.client, path, form, token=person.csrf, htmx=htmx, headers=headers)


@pytest.mark.parametrize("name", URLS)
async def test_another_passenger_gets_404_and_changes_nothing(
    passenger, new_passenger, scene, name
):
    other = await new_passenger(name="Mallory")
    before = await snapshot()
    response = await _ask(other, scene, name)
    assert response.status_code == 404, await response.get_data(as_text=True)
    body = await response.get_data(as_text=True)
    for secret in (scene.paid_txn, scene.pending_txn):
        assert secret not in body
    assert await snapshot() == before

    owner_answer = await _ask(passenger, scene, name)
    assert owner_answer.status_code == URLS[name][4], await owner_answer.get_data(as_text=True)


# Each URL is asked as a page, as htmx and as JSON, so one status entry covers all three.
@pytest.mark.parametrize(
    "name", [name for name in URLS if name not in ("status htmx", "status json")]
)
async def test_anonymous_is_sent_to_log_in_and_changes_nothing(app, passenger, scene, name):
    anonymous = await visitor(app)
    path = URLS[name][1].format(**vars(scene))
    before = await snapshot()

    plain = await _ask(anonymous, scene, name, {"Accept": "text/html"})
    htmx = await _ask(anonymous, scene, name, HX)
    as_json = await _ask(anonymous, scene, name, JSON)

    assert plain.status_code == 303
    assert plain.headers["Location"] == f"/auth/login?next={path}"
    assert htmx.status_code == 401
    assert htmx.headers["HX-Redirect"] == f"/auth/login?next={path}"
    assert as_json.status_code == 401
    assert as_json.mimetype == "application/json"
    assert await snapshot() == before


async def test_login_returns_to_the_page_that_asked(app, passenger, scene):
    """The next= that the login redirect carries brings the owner back to the page."""
    anonymous = await visitor(app)
    response = await anonymous.get(f"/payment/status/{scene.pending_txn}")
    login_url = response.headers["Location"]
    await anonymous.refresh_csrf(login_url)
    back = await anonymous.post(login_url, {"email": passenger.email, "password": "x" * 8})
    assert back.status_code == 401  # wrong password: still not in
    back = await anonymous.post(login_url, {"email": passenger.email, "password": PASSWORD})
    assert back.status_code == 303
    assert back.headers["Location"] == f"/payment/status/{scene.pending_txn}"
