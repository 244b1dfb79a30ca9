"""Accounts: register, log in, log out, and the pages that need a login."""

import pytest

from railserve.models import User
from tests.support.passenger import HX, JSON, PASSWORD, Passenger


async def _anonymous(app) -> Passenger:
    person = Passenger(app, "new@example.com", "New Person")
    await person.refresh_csrf("/auth/register")
    return person


async def test_register_signs_in_and_redirects_home(app):
    person = await _anonymous(app)
    response = await person.post(
        "/auth/register", {"name": "Meera", "email": "Meera@Example.COM", "password": PASSWORD}
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    assert (await person.get("/profile")).status_code == 200
    user = await User.get(email="meera@example.com")
    assert user.password_hash.startswith("$argon2")
    assert PASSWORD not in user.password_hash


async def test_duplicate_email_is_a_conflict_case_insensitively(app, passenger):
    person = await _anonymous(app)
    response = await person.post(
        "/auth/register",
        {"name": "Twin", "email": passenger.email.upper(), "password": PASSWORD},
    )
    assert response.status_code == 409
    assert "already exists" in await response.get_data(as_text=True)
    assert await User.filter(email=passenger.email).count() == 1


@pytest.mark.parametrize(
    ("name", "email", "password", "field_message"),
    [
        ("", "a@example.com", PASSWORD, "Enter your name"),
        ("x" * 61, "a@example.com", PASSWORD, "Enter your name"),
        ("Asha", "not-an-email", PASSWORD, "valid e-mail"),
        ("Asha", "", PASSWORD, "valid e-mail"),
        ("Asha", "a@example.com", "short", "8 to 128"),
        ("Asha", "a@example.com", "p" * 129, "8 to 128"),
    ],
)
async def test_invalid_registration_is_422_and_writes_nothing(
    app, name, email, password, field_message
):
    person = await _anonymous(app)
    response = await person.post(
        "/auth/register", {"name": name, "email": email, "password": password}
    )
    assert response.status_code == 422
    assert field_message in await response.get_data(as_text=True)
    assert await User.all().count() == 0


async def test_login_logout_and_next(app, passenger):
    response = await passenger.post("/auth/logout")
    assert response.status_code == 303
    assert response.headers["Location"] == "/auth/login"
    gone = await passenger.get("/profile")
    assert gone.status_code == 303
    assert gone.headers["Location"] == "/auth/login?next=/profile"

    await passenger.refresh_csrf("/auth/login")
    response = await passenger.post(
        "/auth/login?next=/profile", {"email": passenger.email, "password": PASSWORD}
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/profile"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil"])
async def test_login_never_redirects_off_site(app, passenger, target):
    await passenger.post("/auth/logout")
    await passenger.refresh_csrf("/auth/login")
    response = await passenger.post(
        "/auth/login", {"email": passenger.email, "password": PASSWORD, "next": target}
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/"


async def test_wrong_password_and_unknown_email_get_the_same_401(app, passenger):
    await passenger.post("/auth/logout")
    await passenger.refresh_csrf("/auth/login")
    wrong = await passenger.post(
        "/auth/login", {"email": passenger.email, "password": "wrong-password"}
    )
    unknown = await passenger.post(
        "/auth/login", {"email": "nobody@example.com", "password": "wrong-password"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert "Incorrect e-mail or password." in await wrong.get_data(as_text=True)
    assert "Incorrect e-mail or password." in await unknown.get_data(as_text=True)
    assert (await passenger.get("/profile")).status_code == 303


@pytest.mark.parametrize("path", ["/", "/profile", "/payment/pay/1", "/payment/status/TXN1"])
async def test_pages_need_a_login(app, path):
    client = app.test_client()
    plain = await client.get(path)
    assert plain.status_code == 303
    assert plain.headers["Location"].startswith("/auth/login?next=")
    htmx = await client.get(path, headers=HX)
    assert htmx.status_code == 401
    assert htmx.headers["HX-Redirect"].startswith("/auth/login?next=")
    json = await client.get(path, headers=JSON)
    assert json.status_code == 401


async def test_csrf_token_is_required_to_log_out(app, passenger):
    response = await passenger.post("/auth/logout", csrf=False)
    assert response.status_code == 403
    assert (await passenger.get("/profile")).status_code == 200


def test_passwords_hash_at_argon2s_defaults_unless_configured_and_never_cheaper_in_production():
    from argon2 import PasswordHasher

    from railserve.config import ConfigError, from_env

    defaults = PasswordHasher()
    settings = from_env({})
    assert (settings.password_time_cost, settings.password_memory_cost) == (
        defaults.time_cost,
        defaults.memory_cost,
    )
    production = {"RAILSERVE_ENV": "production", "RAILSERVE_SECRET_KEY": "k"}
    production |= {"RAILSERVE_WEBHOOK_SECRET": "w", "RAILSERVE_SIMUPI_WEBHOOK_SECRET": "s"}
    assert from_env(production).password_memory_cost == defaults.memory_cost
    for cheap in (
        {"RAILSERVE_PASSWORD_TIME_COST": "1"},
        {"RAILSERVE_PASSWORD_MEMORY_COST": "1024"},
    ):
        with pytest.raises(ConfigError, match="argon2"):
            from_env(production | cheap)


async def test_the_configured_cost_is_the_one_new_hashes_use(app, passenger):
    from argon2 import extract_parameters

    settings = app.config["RAILSERVE"]
    user = await User.get(id=passenger.user_id)
    parameters = extract_parameters(user.password_hash)
    assert parameters.time_cost == settings.password_time_cost
    assert parameters.memory_cost == settings.password_memory_cost
