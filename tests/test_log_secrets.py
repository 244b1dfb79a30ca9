"""No card number, CVV, password, cookie, session or secret in any log line, whatever the input.

PRODUCT.md "Running it": 'No card number, CVV, password, session or secret ever appears in a
log line.' Hypothesis drives the register, login and process forms; every line any logger
writes meanwhile (RailServe's at DEBUG, in the JSON format production uses) is read back.
"""

from __future__ import annotations

import json
import logging
import re
import secrets

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from railserve.running import JsonFormatter
from tests.security.helpers import post_form, visitor
from tests.support.passenger import Passenger, card, make_train

METRICS_TOKEN = "metrics-token-never-logged"
examples = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class Lines(logging.Handler):
    """Every record, formatted as the JSON log writes it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    from argon2 import PasswordHasher

    from railserve import auth

    monkeypatch.setattr(auth, "hasher", PasswordHasher(time_cost=1, memory_cost=1024))


@pytest.fixture
async def app(settings, app_with, cheap_hashing):
    async with app_with(settings, metrics_token=METRICS_TOKEN, log_format="json") as application:
        yield application


@pytest.fixture
def lines():
    handler = Lines()
    root, railserve = logging.getLogger(), logging.getLogger("railserve")
    level = railserve.level
    root.addHandler(handler)
    railserve.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    railserve.setLevel(level)


def forms_of(value: str) -> set[str]:
    """The value as written raw or inside a JSON string."""
    return {value, json.dumps(value, ensure_ascii=False)[1:-1], json.dumps(value)[1:-1]}


passwords = st.text(min_size=8, max_size=64).filter(lambda p: len(set(p)) >= 5)


def with_check_digit(body: str) -> str:
    """`body` and its Luhn check digit: a number the form accepts."""
    total = 0
    for index, char in enumerate(reversed(body)):
        digit = int(char) * (2 if index % 2 == 0 else 1)
        total += digit - 9 if digit > 9 else digit
    return body + str((10 - total % 10) % 10)


card_numbers = st.builds(
    lambda body, joiner: joiner.join(with_check_digit(body)[i : i + 4] for i in range(0, 16, 4)),
    st.from_regex(r"4[0-9]{14}", fullmatch=True),
    st.sampled_from(["", " ", "-"]),
)
cvvs = st.from_regex(r"[0-9]{3,4}", fullmatch=True)


@examples
@given(password=passwords, number=card_numbers, cvv=cvvs, wrong=passwords)
async def test_no_secret_reaches_a_log_line(app, settings, lines, password, number, cvv, wrong):
    assume(password != wrong)
    lines.lines.clear()
    person = await visitor(app, "/auth/register")
    person.email = f"log-{secrets.token_hex(6)}@example.com"
    form = {"name": "Asha Rao", "email": person.email, "password": password}
    registered = await post_form(person.client, "/auth/register", form, token=person.csrf)
    assert registered.status_code == 303

    again = await visitor(app)
    refused = await post_form(
        again.client, "/auth/login", {"email": person.email, "password": wrong}, token=again.csrf
    )
    assert refused.status_code == 401
    signed_in = await post_form(
        again.client, "/auth/login", {"email": person.email, "password": password}, token=again.csrf
    )
    assert signed_in.status_code == 303

    payer = Passenger(app, person.email, "Asha Rao")
    payer.client = again.client
    await payer.refresh_csrf("/")
    booking_id = await payer.book(await make_train())
    form = {**await payer.pay_form(booking_id), **card(number, card_cvv=cvv)}
    paid = await payer.post(f"/payment/process/{booking_id}", form)
    assert paid.status_code == 303, await paid.get_data(as_text=True)
    await payer.wait_final(paid.headers["Location"].rsplit("/", 1)[-1])

    written = "\n".join(lines.lines)
    assert written, "the requests were logged"
    digits = re.sub(r"\D", "", number)
    cookies = [cookie.value for cookie in again.client.cookie_jar]
    never = [password, wrong, number, digits, *cookies]
    never += [settings.secret_key, settings.webhook_secret, METRICS_TOKEN, again.csrf, payer.csrf]
    for secret in never:
        for shape in forms_of(secret):
            assert shape not in written, f"{secret!r} was logged"
    assert "card_cvv" not in written
    assert not re.search(rf"(cvv|cvc|security code)\W{{0,24}}{cvv}", written, re.IGNORECASE)
    for line in lines.lines:
        json.loads(line)
