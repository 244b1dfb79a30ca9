"""Bad input of any kind: a clear 4xx, nothing written, never a 5xx.

Hypothesis drives every form and every id in a URL with arbitrary text, numbers, huge,
empty, unicode and control-character values, mixed with valid ones so that the valid path
is exercised too. Each example compares the database before and after.
"""

from __future__ import annotations

import secrets
import unicodedata
from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as outcome
from hypothesis import strategies as st

from railserve.models import Booking, User
from railserve.payment.models import Payment
from tests.security.helpers import event, post_form, send_webhook, snapshot, visitor
from tests.support.passenger import CARD_OK, card

fuzz = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Register and log in spend most of their time in argon2 (by design): fewer examples.
fuzz_accounts = settings(fuzz, max_examples=30)

NASTY = [
    "",
    " ",
    "\x00",
    "\x00abc",
    "a\x00@example.com",
    "\r\n",
    "\u202e",
    "\ufeff",
    "\ud7ff",
    "🚆" * 70,
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    "%00",
    "../../etc/passwd",
    "0",
    "-1",
    "1e309",
    "NaN",
    "2147483648",
    "99999999999999999999",
    "١٢٣",
    "x" * 5000,
    "9" * 300,
]
garbage = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=80),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=300),
    st.integers().map(str),
    st.floats().map(str),
    st.binary(max_size=40).map(lambda raw: raw.decode("latin-1")),
)


def maybe(valid: st.SearchStrategy, weight: int = 3, near: tuple = ()) -> st.SearchStrategy:
    """Mostly a valid value, else a nearly valid one, garbage, or the field left out (None)."""
    wrong = [st.sampled_from(near)] if near else []
    other = st.one_of(*wrong, garbage, st.none())
    return st.integers(0, weight).flatmap(lambda pick: valid if pick else other)


def present(form: dict) -> dict:
    return {name: value for name, value in form.items() if value is not None}


def printable_name(value: str | None) -> bool:
    return value is not None and 0 < len(value.strip()) <= 60 and value.strip().isprintable()


async def refused_without_writes(response, before: dict) -> None:
    outcome(f"refused with {response.status_code}")
    body = await response.get_data(as_text=True)
    assert 400 <= response.status_code < 500, (response.status_code, body[:500])
    assert response.status_code != 403, body[:500]  # the token was right: not a CSRF refusal
    assert await snapshot() == before


names = st.sampled_from(["Asha Rao", "  Vikram  ", "Zoë Ñandú", "李雷", "O'Brien-Smith"])


@fuzz_accounts
@given(
    name=maybe(names),
    email=maybe(st.emails()),
    password=maybe(st.text(min_size=8, max_size=128)),
)
async def test_register_form(app, name, email, password):
    person = await visitor(app, "/auth/register")
    before = await snapshot()
    form = present({"name": name, "email": email, "password": password})
    response = await post_form(person.client, "/auth/register", form, token=person.csrf)
    if response.status_code != 303:
        await refused_without_writes(response, before)
        return
    outcome("accepted")
    assert password is not None and 8 <= len(password) <= 128
    assert printable_name(name)
    [user] = await User.filter(id__gt=0).order_by("-id").limit(1)
    assert user.name == name.strip()
    assert user.email == user.email.lower()
    # The same address in other letters is the same account.
    again = await visitor(app, "/auth/register")
    form["email"] = email.strip().upper() if email.isascii() else email
    twin = await post_form(again.client, "/auth/register", form, token=again.csrf)
    assert twin.status_code == 409
    assert await User.filter(email=user.email).count() == 1
    assert password not in user.password_hash


@fuzz_accounts
@given(email=maybe(st.emails(), 2, ("OWNER",)), password=maybe(st.text(max_size=200)))
async def test_login_form(app, passenger, email, password):
    if email == "OWNER":  # a real account, with a wrong password
        email = passenger.email
    person = await visitor(app)
    before = await snapshot()
    form = present({"email": email, "password": password})
    response = await post_form(person.client, "/auth/login", form, token=person.csrf)
    await refused_without_writes(response, before)
    assert response.status_code == 401
    assert (await person.get("/profile")).status_code == 303


@fuzz
@given(
    train_id=maybe(st.just("TRAIN"), 3, (" 1 ", "01", "999")),
    passengers=st.lists(maybe(names, 8, ("", " ", "x" * 61, "a\tb")), max_size=8),
)
async def test_booking_form(app, passenger, train, train_id, passengers):
    if train_id == "TRAIN":
        train_id = str(train.id)
    names_sent = [value for value in passengers if value is not None]
    before = await snapshot()
    form = present({"train_id": train_id, "passenger_name": names_sent or None})
    response = await post_form(passenger.client, "/bookings", form, token=passenger.csrf)
    if response.status_code != 303:
        await refused_without_writes(response, before)
        return
    outcome("accepted")
    assert train_id is not None and int(train_id.strip()) == train.id
    assert 1 <= len(names_sent) <= 6 and all(printable_name(n) for n in names_sent)
    booking = await Booking.filter(user_id=passenger.user_id).order_by("-id").first()
    assert booking.passengers == [n.strip() for n in names_sent]
    assert booking.amount == train.fare * len(names_sent)
    assert booking.status == "pending_payment"


def _year() -> str:
    return f"{(datetime.now(UTC).year + 2) % 100:02d}"


METHODS = ["credit_card", "debit_card", "net_banking", "upi", "wallet"]
# One example's form; "KEY" stands for a fresh idempotency key.
payment_forms = st.fixed_dictionaries(
    {
        "method": maybe(st.sampled_from(METHODS), 8, ("CREDIT_CARD", "cash")),
        "amount": maybe(st.sampled_from(["1250.00", "1250", " 1250.0"]), 5, ("1250.01", "-1250")),
        "idempotency_key": maybe(st.just("KEY"), 8, ("short", "k" * 65, "has space" * 3)),
        "card_number": maybe(
            st.sampled_from([CARD_OK, "4000-0000-0000-0002", "4111111111111111"]),
            near=("4242", "4242 4242 4242 4241", "4242424242424242424242"),
        ),
        "card_expiry": maybe(st.just(f"12/{_year()}"), near=("01/20", "13/30", "1/30", "00/00")),
        "card_cvv": maybe(st.sampled_from(["123", "4567"]), near=("12", "12a", "12345")),
        "card_name": maybe(names),
        "bank": maybe(st.sampled_from(["SBI", "HDFC", "ICICI", "AXIS", "KOTAK"]), near=("sbi",)),
        "upi_id": maybe(
            st.sampled_from(["success@upi", "failure@upi", "asha@okhdfc"]), near=("a@b", "@upi")
        ),
        "wallet": maybe(
            st.sampled_from(["paytm", "phonepe", "amazonpay", "mobikwik"]), near=("PayTM",)
        ),
    }
)


@pytest.fixture
async def booking_id(passenger, train) -> int:
    return await passenger.book(train)


@fuzz
@given(form=payment_forms, htmx=st.booleans())
async def test_payment_form(app, passenger, booking_id, form, htmx):
    if form["idempotency_key"] == "KEY":
        form["idempotency_key"] = secrets.token_urlsafe(24)
    before = await snapshot()
    path = f"/payment/process/{booking_id}"
    response = await post_form(
        passenger.client, path, present(form), token=passenger.csrf, htmx=htmx
    )
    if response.status_code not in (200, 303):
        await refused_without_writes(response, before)
        return
    outcome("accepted")
    payment = await Payment.get(idempotency_key=form["idempotency_key"], user_id=passenger.user_id)
    assert form["method"] in METHODS and payment.method == form["method"]
    assert payment.amount == 125000 and payment.status == "pending"
    assert CARD_OK.replace(" ", "") not in payment.instrument
    # Settle it as failed, so that the booking can be paid again in the next example.
    assert (
        await send_webhook(app, event(payment.transaction_id, "payment.failed"))
    ).status_code == 200


# Every URL that carries an id; none belongs to the passenger asking.
ID_ROUTES = [
    ("GET", "/payment/pay/{}"),
    ("POST", "/payment/process/{}"),
    ("GET", "/payment/status/{}"),
    ("POST", "/payment/cancel/{}"),
    ("GET", "/payment/receipt/{}"),
    ("POST", "/bookings/{}/cancel"),
]


@pytest.fixture
async def strangers_things(new_passenger, train) -> list[str]:
    """Another passenger's booking and attempt ids, for the fuzzer to hit by chance."""
    owner = await new_passenger(name="Owner")
    booking = await owner.book(train)
    return [str(booking), await owner.start(booking)]


@fuzz
@given(
    route=st.sampled_from(ID_ROUTES),
    raw=st.one_of(garbage, st.integers(min_value=-(2**70), max_value=2**70).map(str)),
    stranger=st.booleans(),
    accept=st.sampled_from([None, {"HX-Request": "true"}, {"Accept": "application/json"}]),
)
async def test_ids_in_urls(passenger, strangers_things, route, raw, stranger, accept):
    if stranger:
        raw = strangers_things[len(raw) % 2]
    method, template = route
    path = template.format(quote(raw, safe=""))
    before = await snapshot()
    if method == "GET":
        response = await passenger.get(path, accept)
    else:
        response = await post_form(passenger.client, path, {}, token=passenger.csrf, headers=accept)
    assert response.status_code == 404, (path[:200], response.status_code)
    assert await snapshot() == before


@pytest.mark.parametrize(
    "path",
    [
        "/payment/pay/99999999999999999999",
        "/payment/pay/2147483648",
        "/payment/pay/0",
        "/payment/pay/-1",
        "/payment/pay/abc",
        "/payment/pay/1.0",
        "/payment/pay/%201",
        "/payment/status/" + "A" * 10_000,
        "/payment/status/TXN",
        "/payment/receipt/" + "9" * 10_000,
        "/bookings/99999999999999999999/cancel",
    ],
)
async def test_non_integer_or_overflowing_ids_are_404(passenger, path):
    method = "POST" if path.endswith("/cancel") else "GET"
    if method == "GET":
        response = await passenger.get(path)
    else:
        response = await post_form(passenger.client, path, {}, token=passenger.csrf)
    assert response.status_code == 404
    assert "Not found" in await response.get_data(as_text=True)


async def test_only_the_exact_id_names_the_passengers_own_things(passenger, train):
    """Lookalikes of one's own ids (a unicode digit, a leading zero, a longer or lower-case
    transaction id) are other URLs: 404, and cancelling through one cancels nothing."""
    booking_id = await passenger.book(train)
    transaction_id = await passenger.start(booking_id)
    arabic = "".join(
        unicodedata.lookup(f"ARABIC-INDIC DIGIT {_DIGITS[int(d)]}") for d in str(booking_id)
    )
    assert (await passenger.get(f"/payment/status/{transaction_id}")).status_code == 200
    for path in (
        f"/payment/pay/{arabic}",
        f"/payment/pay/0{booking_id}",
        f"/payment/status/{transaction_id}X",
        f"/payment/status/{transaction_id.lower()}",
        f"/payment/receipt/{transaction_id}0",
    ):
        assert (await passenger.get(path)).status_code == 404, path
    before = await snapshot()
    response = await post_form(
        passenger.client, f"/payment/cancel/{transaction_id}junk", {}, token=passenger.csrf
    )
    assert response.status_code == 404
    assert await snapshot() == before


_DIGITS = dict(
    enumerate(("ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE"))
)


async def test_an_oversized_form_is_refused(passenger, train):
    before = await snapshot()
    form = {"train_id": str(train.id), "passenger_name": ["x" * 70_000]}
    response = await post_form(passenger.client, "/bookings", form, token=passenger.csrf)
    assert response.status_code == 413
    assert await snapshot() == before


async def test_a_cancel_that_is_not_allowed_is_a_clear_409(passenger, train):
    booking_id = await passenger.book(train)
    transaction_id = await passenger.start(booking_id, card(CARD_OK))
    cancel = f"/payment/cancel/{transaction_id}"
    assert (await post_form(passenger.client, cancel, {}, token=passenger.csrf)).status_code == 303
    before = await snapshot()
    again = await post_form(passenger.client, cancel, {}, token=passenger.csrf)
    assert again.status_code == 409
    assert "cannot be cancelled" in await again.get_data(as_text=True)
    assert await snapshot() == before
