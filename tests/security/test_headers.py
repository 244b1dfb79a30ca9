"""Security headers on every page, cookie flags, and production's refusal to run unsafely."""

from __future__ import annotations

import os
import re
from urllib.parse import urlencode

import pytest

from railserve import create_app
from railserve.config import ConfigError, from_env
from tests.security.helpers import event, post_form, send_webhook, visitor
from tests.support.passenger import HX, JSON, PASSWORD, Passenger


def csp_directives(response) -> dict[str, list[str]]:
    policy = response.headers["Content-Security-Policy"]
    directives = {}
    for part in policy.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def assert_safe_headers(response, where: str) -> None:
    csp = csp_directives(response)
    for kind in ("script-src", "style-src"):
        sources = csp.get(kind, csp.get("default-src"))
        assert sources, (where, kind)
        assert "'unsafe-inline'" not in sources, (where, kind)
        assert "'unsafe-eval'" not in sources, (where, kind)
        assert "*" not in sources and "data:" not in sources, (where, kind)
    assert csp["frame-ancestors"] == ["'none'"], where
    assert response.headers["X-Content-Type-Options"] == "nosniff", where
    assert response.headers["Referrer-Policy"] == "same-origin", where


async def _pages(app, passenger: Passenger, train) -> list[tuple[str, object]]:
    booking_id = await passenger.book(train)
    transaction_id = await passenger.start(booking_id)
    await send_webhook(app, event(transaction_id))
    unpaid = await passenger.book(train)
    anonymous = await visitor(app)
    asked = [
        (anonymous, "/auth/login", None),
        (anonymous, "/auth/register", None),
        (anonymous, "/", None),  # the redirect to log in
        (passenger, "/", None),
        (passenger, "/", HX),
        (passenger, "/profile", None),
        (passenger, f"/payment/pay/{unpaid}", None),
        (passenger, f"/payment/pay/{unpaid}", HX),
        (passenger, f"/payment/status/{transaction_id}", None),
        (passenger, f"/payment/status/{transaction_id}", HX),
        (passenger, f"/payment/status/{transaction_id}", JSON),
        (passenger, f"/payment/receipt/{transaction_id}", None),
        (passenger, "/payment/pay/999999", None),  # 404 page
        (passenger, "/no/such/page", None),
        (passenger, "/static/app.css", None),
        (passenger, "/favicon.ico", None),
        (passenger, "/healthz", None),
    ]
    responses = [(path, await person.get(path, headers)) for person, path, headers in asked]
    forged = await post_form(passenger.client, "/bookings", {}, token="forged")
    invalid = await post_form(passenger.client, "/bookings", {}, token=passenger.csrf)
    webhook = await send_webhook(app, b"{}", header="")
    return [*responses, ("403", forged), ("422", invalid), ("webhook 401", webhook)]


async def test_every_response_carries_the_security_headers(app, passenger, train):
    for where, response in await _pages(app, passenger, train):
        assert_safe_headers(response, where)
        assert "Strict-Transport-Security" not in response.headers, where


async def test_pages_have_no_inline_script_or_style(passenger, train):
    """The CSP forbids inline code, so a page that used it would break in the browser."""
    booking_id = await passenger.book(train)
    for path in ("/", "/profile", f"/payment/pay/{booking_id}"):
        html = await passenger.text(path)
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), path
        assert "<style" not in html, path
        assert not re.search(r"\son[a-z]+\s*=", html), path  # onclick= and friends
        assert not re.search(r'\sstyle\s*=\s*"', html), path


async def test_production_adds_hsts_and_secure_cookies(settings, app_with):
    async with app_with(settings, env="production") as app:
        person = Passenger(app, "prod@example.com", "Prod")
        page = await person.client.get("/auth/register", scheme="https")
        assert_safe_headers(page, "production page")
        hsts = page.headers["Strict-Transport-Security"]
        assert "max-age=" in hsts and int(hsts.split("max-age=")[1].split(";")[0]) >= 31536000
        session_cookie = _cookie(page, "railserve_session")
        assert {"secure", "httponly"} <= session_cookie["flags"]
        assert session_cookie["samesite"] in ("lax", "strict")

        html = await page.get_data(as_text=True)
        csrf = html.split('name="csrf-token" content="')[1].split('"')[0]
        form = {"name": "Prod", "email": person.email, "password": PASSWORD, "csrf_token": csrf}
        registered = await person.client.post(
            "/auth/register",
            data=urlencode(form),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            scheme="https",
        )
        assert registered.status_code == 303
        auth_cookie = _cookie(registered, "railserve_auth")
        assert {"secure", "httponly"} <= auth_cookie["flags"]
        assert auth_cookie["samesite"] in ("lax", "strict")


async def test_development_cookies_are_httponly_and_samesite(app):
    client = app.test_client()
    page = await client.get("/auth/register")
    session_cookie = _cookie(page, "railserve_session")
    assert "httponly" in session_cookie["flags"]
    assert session_cookie["samesite"] in ("lax", "strict")
    html = await page.get_data(as_text=True)
    csrf = html.split('name="csrf-token" content="')[1].split('"')[0]
    response = await post_form(
        client,
        "/auth/register",
        {"name": "Dev", "email": "dev@example.com", "password": PASSWORD},
        token=csrf,
    )
    assert response.status_code == 303
    auth_cookie = _cookie(response, "railserve_auth")
    assert "httponly" in auth_cookie["flags"]
    assert auth_cookie["samesite"] in ("lax", "strict")


def _cookie(response, name: str) -> dict:
    for header in response.headers.getlist("Set-Cookie"):
        if header.startswith(f"{name}="):
            parts = [part.strip() for part in header.split(";")[1:]]
            attributes = {
                key.lower(): value.lower()
                for key, _, value in (part.partition("=") for part in parts)
            }
            return {"flags": set(attributes), "samesite": attributes.get("samesite")}
    raise AssertionError(f"no {name} cookie set: {response.headers.getlist('Set-Cookie')}")


@pytest.mark.parametrize(
    ("environ", "missing"),
    [
        ({}, "RAILSERVE_SECRET_KEY"),
        ({"RAILSERVE_SECRET_KEY": "s3cret"}, "RAILSERVE_WEBHOOK_SECRET"),
        ({"RAILSERVE_WEBHOOK_SECRET": "wh"}, "RAILSERVE_SECRET_KEY"),
        ({"RAILSERVE_SECRET_KEY": "", "RAILSERVE_WEBHOOK_SECRET": ""}, "RAILSERVE_SECRET_KEY"),
        (
            {"RAILSERVE_SECRET_KEY": "s3cret", "RAILSERVE_WEBHOOK_SECRET": "wh"},
            "RAILSERVE_SIMUPI_WEBHOOK_SECRET",
        ),
    ],
)
def test_production_refuses_to_start_without_its_secrets(environ, missing, monkeypatch):
    with pytest.raises(ConfigError, match=missing):
        from_env({"RAILSERVE_ENV": "production", **environ})
    for name in list(os.environ):
        if name.startswith("RAILSERVE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("RAILSERVE_ENV", "production")
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=missing):
        create_app()


def test_production_starts_with_its_secrets():
    settings = from_env(
        {
            "RAILSERVE_ENV": "production",
            "RAILSERVE_SECRET_KEY": "s3cret",
            "RAILSERVE_WEBHOOK_SECRET": "wh",
            "RAILSERVE_SIMUPI_WEBHOOK_SECRET": "upi",
        }
    )
    assert settings.production
    assert (settings.secret_key, settings.webhook_secret) == ("s3cret", "wh")
    assert settings.simupi_webhook_secret == "upi"
    # Without SimUPI among the gateways, its secret is not needed.
    alone = from_env(
        {
            "RAILSERVE_ENV": "production",
            "RAILSERVE_SECRET_KEY": "s3cret",
            "RAILSERVE_WEBHOOK_SECRET": "wh",
            "RAILSERVE_GATEWAYS": "simulated",
            "RAILSERVE_GATEWAY_ROUTES": "*=simulated",
        }
    )
    assert alone.gateway_names == ["simulated"]
    assert not settings.show_test_triggers
