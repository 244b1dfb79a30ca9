"""Rate limits on login, registration and payment attempts: per address and per account.

Limits are counts per minute from Settings, so these tests build apps with low ones. The
limiter sees the client's address (the ASGI scope's `client`), set here per request.
"""

from __future__ import annotations

import re

import pytest

from railserve import config
from railserve.models import User
from railserve.payment.models import Payment
from tests.security.helpers import event, post_form, send_webhook, visitor
from tests.support.passenger import CARD_DECLINED, PASSWORD, Passenger, card, make_train

LOW = {
    "rate_limits": True,
    "rate_limit_login_per_address": 100,
    "rate_limit_login_per_account": 100,
    "rate_limit_register_per_address": 100,
    "rate_limit_payment_per_user": 100,
    "rate_limit_payment_per_address": 100,
}


def _limits(**low: int) -> dict:
    return {**LOW, **{f"rate_limit_{name}": count for name, count in low.items()}}


async def assert_limited(response, *, htmx: bool = False) -> None:
    """A 429 that tells the person what happened and when to come back."""
    assert response.status_code == 429
    retry_after = response.headers["Retry-After"]
    assert retry_after.isdigit() and 1 <= int(retry_after) <= 60
    body = await response.get_data(as_text=True)
    assert "Too many attempts" in body
    assert ("<html" in body) is not htmx  # htmx gets a partial to swap, a browser a page
    assert 'id="error-message"' in body


async def _login(person: Passenger, email: str, password: str, address: str, htmx=False):
    form = {"email": email, "password": password}
    return await post_form(
        person.client, "/auth/login", form, token=person.csrf, htmx=htmx, address=address
    )


async def test_login_attempts_are_limited_per_address(settings, app_with):
    async with app_with(settings, **_limits(login_per_address=3)) as app:
        target = await Passenger.sign_up(app)
        guesser = await visitor(app)
        for n in range(3):
            response = await _login(guesser, f"who{n}@example.com", "guess-guess", "10.0.0.1")
            assert response.status_code == 401
        await assert_limited(await _login(guesser, target.email, PASSWORD, "10.0.0.1"))
        await assert_limited(
            await _login(guesser, target.email, PASSWORD, "10.0.0.1", htmx=True), htmx=True
        )
        # Limited means refused: even the right password did not log in.
        assert (await guesser.get("/profile")).status_code == 303
        # Another address is not held back by this one.
        assert (await _login(guesser, target.email, PASSWORD, "10.0.0.2")).status_code == 303


async def test_login_attempts_are_limited_per_account_across_addresses(settings, app_with):
    async with app_with(settings, **_limits(login_per_account=2)) as app:
        target = await Passenger.sign_up(app)
        guesser = await visitor(app)
        assert (await _login(guesser, target.email, "guess-one", "10.0.1.1")).status_code == 401
        assert (await _login(guesser, target.email, "guess-two", "10.0.1.2")).status_code == 401
        # A third address, and the e-mail in other letters: still the same account.
        await assert_limited(await _login(guesser, target.email.upper(), PASSWORD, "10.0.1.3"))
        other = await Passenger.sign_up(app, email="bystander@example.com")
        assert (await _login(guesser, other.email, PASSWORD, "10.0.1.3")).status_code == 303


async def test_registrations_are_limited_per_address(settings, app_with):
    async with app_with(settings, **_limits(register_per_address=2)) as app:

        async def register(n: int, address: str):
            person = await visitor(app, "/auth/register")  # a new browser each time
            form = {"name": "Spammer", "email": f"spam{n}@example.com", "password": PASSWORD}
            return await post_form(
                person.client, "/auth/register", form, token=person.csrf, address=address
            )

        assert (await register(1, "10.0.2.1")).status_code == 303
        assert (await register(2, "10.0.2.1")).status_code == 303
        await assert_limited(await register(3, "10.0.2.1"))
        assert not await User.exists(email="spam3@example.com")
        assert (await register(4, "10.0.2.2")).status_code == 303


async def _pay(person: Passenger, booking_id: int, address: str, htmx: bool = False):
    form = {**await person.pay_form(booking_id), **card(CARD_DECLINED)}
    token = person.csrf
    return await post_form(
        person.client,
        f"/payment/process/{booking_id}",
        form,
        token=token,
        htmx=htmx,
        address=address,
    )


async def _declined(person: Passenger, response) -> None:
    """The attempt went through and was declined (held gateway: settle it ourselves)."""
    assert response.status_code in (200, 303), await response.get_data(as_text=True)
    body = await response.get_data(as_text=True)
    location = response.headers.get("Location", "")
    transaction_id = re.search(r"TXN[A-Z0-9]{16}", location or body).group(0)
    await send_webhook(person.app, event(transaction_id, "payment.failed"))


async def test_payment_attempts_are_limited_per_user(settings, app_with):
    async with app_with(settings, **_limits(payment_per_user=2)) as app:
        train = await make_train()
        payer = await Passenger.sign_up(app)
        booking_id = await payer.book(train)
        await _declined(payer, await _pay(payer, booking_id, "10.0.3.1"))
        await _declined(payer, await _pay(payer, booking_id, "10.0.3.2"))
        attempts = await Payment.filter(user_id=payer.user_id).count()
        await assert_limited(await _pay(payer, booking_id, "10.0.3.3"))
        await assert_limited(await _pay(payer, booking_id, "10.0.3.3", htmx=True), htmx=True)
        assert await Payment.filter(user_id=payer.user_id).count() == attempts
        # Another passenger from the same address pays as usual.
        neighbour = await Passenger.sign_up(app)
        await _declined(neighbour, await _pay(neighbour, await neighbour.book(train), "10.0.3.3"))


async def test_payment_attempts_are_limited_per_address(settings, app_with):
    async with app_with(settings, **_limits(payment_per_address=3)) as app:
        train = await make_train()
        people = [await Passenger.sign_up(app) for _ in range(2)]
        bookings = [await person.book(train) for person in people]
        for n in range(3):
            person, booking_id = people[n % 2], bookings[n % 2]
            await _declined(person, await _pay(person, booking_id, "10.0.4.1"))
        await assert_limited(await _pay(people[1], bookings[1], "10.0.4.1"))
        await _declined(people[1], await _pay(people[1], bookings[1], "10.0.4.2"))


async def test_defaults_allow_a_persons_normal_pace(settings, app_with):
    """Ten logins and ten payment attempts in a minute from one address are not refused."""
    defaults = config.Settings()
    assert defaults.rate_limits is True
    async with app_with(
        settings,
        rate_limits=True,
        **{name: getattr(defaults, name) for name in LOW if name != "rate_limits"},
    ) as app:
        person = await Passenger.sign_up(app)
        for _ in range(10):
            await person.refresh_csrf("/auth/login")  # logging in renews the token
            assert (await _login(person, person.email, PASSWORD, "10.0.5.1")).status_code == 303
        await person.refresh_csrf("/")
        booking_id = await person.book(await make_train())
        for _ in range(10):
            await _declined(person, await _pay(person, booking_id, "10.0.5.1"))


async def test_rate_limits_off_lifts_them(settings, app_with):
    environ = {
        "RAILSERVE_RATE_LIMITS": "off",
        "RAILSERVE_RATE_LIMIT_LOGIN_PER_ADDRESS": "1",
        "RAILSERVE_RATE_LIMIT_LOGIN_PER_ACCOUNT": "1",
        "RAILSERVE_SECRET_KEY": "k",
        "RAILSERVE_WEBHOOK_SECRET": "w",
    }
    loaded = config.from_env(environ)
    assert loaded.rate_limits is False
    assert loaded.rate_limit_login_per_account == 1
    async with app_with(settings, **_limits(login_per_address=1, login_per_account=1)) as app:
        person = await visitor(app)
        await _login(person, "a@example.com", "guess-guess", "10.0.6.1")
        assert (await _login(person, "a@example.com", "guess", "10.0.6.1")).status_code == 429
    async with app_with(
        settings, **{**_limits(login_per_address=1, login_per_account=1), "rate_limits": False}
    ) as app:
        person = await visitor(app)
        for _ in range(5):
            response = await _login(person, "a@example.com", "guess-guess", "10.0.6.1")
            assert response.status_code == 401


def test_limits_come_from_the_environment_and_must_be_positive():
    base = {"RAILSERVE_SECRET_KEY": "k", "RAILSERVE_WEBHOOK_SECRET": "w"}
    loaded = config.from_env({**base, "RAILSERVE_RATE_LIMIT_PAYMENT_PER_USER": "5"})
    assert loaded.rate_limit_payment_per_user == 5
    assert loaded.rate_limits is True
    for bad in ("0", "-3", "many"):
        with pytest.raises(config.ConfigError):
            config.from_env({**base, "RAILSERVE_RATE_LIMIT_LOGIN_PER_ADDRESS": bad})
