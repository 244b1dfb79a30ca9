"""CSRF tokens and security headers.

quart-auth has no CSRF protection: every unsafe request must carry the session's token,
as the `csrf_token` field or the `X-CSRF-Token` header (htmx sends it from `hx-headers`).
"""

from __future__ import annotations

import hmac
import secrets

from quart import Quart, Response, current_app, request, session
from werkzeug.exceptions import Forbidden

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# Signed by the gateway instead: it has no session.
CSRF_EXEMPT_ENDPOINTS = {"payment.webhook", "payment.provider_webhook"}

CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "object-src 'none'",
        "frame-ancestors 'none'",
    )
)


def csrf_token() -> str:
    """The session's token, made on first use."""
    token = session.get("csrf_token")
    if not token:
        token = secrets.token_urlsafe(32)
        session["csrf_token"] = token
    return token


def rotate_csrf() -> None:
    """Drop the token when the session changes hands (login): one made before, perhaps
    planted by someone else, must not stay valid for the signed-in passenger."""
    session.pop("csrf_token", None)


class CsrfRefused(Forbidden):
    description = (
        "Your session's security token is missing or out of date. Reload the page and try again."
    )


async def check_csrf() -> None:
    if request.method in SAFE_METHODS or request.endpoint in CSRF_EXEMPT_ENDPOINTS:
        return
    expected = session.get("csrf_token")
    sent = request.headers.get("X-CSRF-Token")
    if sent is None:
        form = await request.form
        sent = form.get("csrf_token")
    if not (expected and sent and hmac.compare_digest(expected.encode(), sent.encode())):
        raise CsrfRefused()


async def security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("X-Frame-Options", "DENY")
    if current_app.config["RAILSERVE"].production:
        headers.setdefault("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
    if response.mimetype == "text/html":
        headers.setdefault("Cache-Control", "no-store")
    return response


def init_app(app: Quart) -> None:
    app.before_request(check_csrf)
    app.after_request(security_headers)
    app.jinja_env.globals["csrf_token"] = csrf_token
