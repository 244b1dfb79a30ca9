"""Accounts: password bounds, e-mail normalisation, one answer for every failed login."""

from __future__ import annotations

import re

import pytest

from railserve.models import User
from tests.security.helpers import post_form, visitor
from tests.support.passenger import PASSWORD


async def _register(app, email: str, password: str = PASSWORD, name: str = "Asha Rao"):
    person = await visitor(app, "/auth/register")
    form = {"name": name, "email": email, "password": password}
    return person, await post_form(person.client, "/auth/register", form, token=person.csrf)


@pytest.mark.parametrize(
    ("length", "accepted"), [(0, False), (7, False), (8, True), (128, True), (129, False)]
)
async def test_passwords_are_8_to_128_characters(app, length, accepted):
    _, response = await _register(app, "len@example.com", "p" * length)
    assert response.status_code == (303 if accepted else 422)
    assert await User.exists(email="len@example.com") is accepted
    if not accepted:
        assert "Use 8 to 128 characters." in await response.get_data(as_text=True)


async def test_email_is_stored_lower_case_and_logs_in_in_any_case(app):
    person, response = await _register(app, "  Asha.Rao@Example.COM ")
    assert response.status_code == 303
    assert await User.exists(email="asha.rao@example.com")
    await post_form(person.client, "/auth/logout", {}, token=await person.refresh_csrf("/"))
    again = await visitor(app)
    form = {"email": "ASHA.RAO@example.com", "password": PASSWORD}
    response = await post_form(again.client, "/auth/login", form, token=again.csrf)
    assert response.status_code == 303


async def test_a_registered_email_in_other_letters_is_a_409(app):
    assert (await _register(app, "twin@example.com"))[1].status_code == 303
    _, response = await _register(app, "TWIN@Example.com", name="Impostor")
    assert response.status_code == 409
    assert "already exists" in await response.get_data(as_text=True)
    assert [user.name for user in await User.filter(email="twin@example.com")] == ["Asha Rao"]


def _message(html: str) -> list[str]:
    """What the login form tells the person: its alert and field messages."""
    return re.findall(r'role="alert">([^<]*)<', html) + re.findall(
        r'id="password-error"[^>]*>([^<]*)<', html
    )


async def test_unknown_email_and_wrong_password_get_the_same_401(app, passenger):
    anonymous = await visitor(app)
    answers = []
    for email, password in [
        (passenger.email, "not-the-password"),
        ("nobody@example.com", "not-the-password"),
        ("nobody@example.com", PASSWORD),
        ("not an e-mail", "not-the-password"),
    ]:
        form = {"email": email, "password": password}
        response = await post_form(anonymous.client, "/auth/login", form, token=anonymous.csrf)
        assert response.status_code == 401
        answers.append(_message(await response.get_data(as_text=True)))
    assert answers[0] and all(answer == answers[0] for answer in answers)
    assert "Incorrect e-mail or password." in answers[0]
    assert (await anonymous.get("/profile")).status_code == 303


async def test_logging_in_renews_the_csrf_token(app, passenger):
    """A token handed out before login (perhaps planted) does not work after it."""
    person = await visitor(app)
    old = person.csrf
    form = {"email": passenger.email, "password": PASSWORD}
    assert (await post_form(person.client, "/auth/login", form, token=old)).status_code == 303
    assert (await post_form(person.client, "/notifications/read", {}, token=old)).status_code == 403
    new = await person.refresh_csrf("/")
    assert new != old
    response = await post_form(person.client, "/notifications/read", {}, token=new)
    assert response.status_code == 303
