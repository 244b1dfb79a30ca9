"""CSRF tokens and security headers.

quart-auth has no CSRF protection: every unsafe request must carry the session's token,
as the `csrf_token` field or the `X-CSRF-Token` header (htmx sends it from `hx-headers`).
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from quart import Quart, Response, current_app, request, session
from quart.sessions import SecureCookieSession, SecureCookieSessionInterface
from quart_auth import QuartAuth
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


# Set on every response unless the view set its own; HSTS only in production. Names are
# kept with their lower-case form: one look at the response's few headers, not a scan per name.
_HEADERS = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
)
_PRODUCTION_HEADERS = (
    *_HEADERS,
    ("Strict-Transport-Security", "max-age=63072000; includeSubDomains"),
)
_LOWER = {name: name.lower() for name, _ in _PRODUCTION_HEADERS}


async def security_headers(response: Response) -> Response:
    headers = response.headers
    present = {name.lower() for name, _ in headers.items()}
    production = current_app.config["RAILSERVE"].production
    for name, value in _PRODUCTION_HEADERS if production else _HEADERS:
        if _LOWER[name] not in present:
            headers.add(name, value)
    if "cache-control" not in present and response.mimetype == "text/html":
        headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Quart) -> None:
    app.session_interface = RememberingSessionInterface()
    app.before_request(check_csrf)
    app.after_request(security_headers)
    app.jinja_env.globals["csrf_token"] = csrf_token


# --- Verified cookies, remembered ------------------------------------------------------
# Every request carries the same two signed cookies (session and sign-in) for as long as
# they live, and checking a signature (HMAC, base64, JSON) costs more than the status poll's
# own work outside its query. A cookie string that verified once verifies again until it
# expires, so remember it. Only verified strings are kept, keyed by the whole string, and
# their age is checked again on every use.

VERIFIED_CACHE_SIZE = 4096


class VerifiedCookies:
    """Cookie string -> (payload, signed at), for cookies whose signature checked out."""

    def __init__(self, size: int = VERIFIED_CACHE_SIZE) -> None:
        self.size = size
        self.entries: OrderedDict[tuple[object, str], tuple[Any, int]] = OrderedDict()

    def load(self, serializer: URLSafeTimedSerializer, scope: object, value: str, max_age: int):
        """The payload, as `serializer.loads(value, max_age)` would give it (or raise)."""
        key = (scope, value)
        hit = self.entries.get(key)
        if hit is not None and time.time() - hit[1] <= max_age:
            self.entries.move_to_end(key)
            return hit[0]
        payload, signed = serializer.loads(value, max_age=max_age, return_timestamp=True)
        if _immutable(payload):
            self.entries[key] = (payload, int(signed.timestamp()))
            if len(self.entries) > self.size:
                self.entries.popitem(last=False)
        return payload


def _immutable(payload: object) -> bool:
    """Kept only if nobody can change it through the session: strings and numbers."""
    if isinstance(payload, str | int):
        return True
    return isinstance(payload, dict) and all(
        isinstance(v, str | int | type(None)) for v in payload.values()
    )


_verified = VerifiedCookies()


class RememberingSessionInterface(SecureCookieSessionInterface):
    """Quart's signed-cookie session, with the signer built once and verified cookies kept."""

    _signer: tuple[object, URLSafeTimedSerializer | None] | None = None

    def get_signing_serializer(self, app: Quart) -> URLSafeTimedSerializer | None:
        keys = (app.secret_key, tuple(app.config.get("SECRET_KEY_FALLBACKS") or ()))
        if self._signer is None or self._signer[0] != keys:
            self._signer = (keys, super().get_signing_serializer(app))
        return self._signer[1]

    async def open_session(self, app: Quart, request: Any) -> SecureCookieSession | None:
        signer = self.get_signing_serializer(app)
        if signer is None:
            return None
        cookie = request.cookies.get(self.get_cookie_name(app))
        if cookie is None:
            return self.session_class()
        max_age = int(app.permanent_session_lifetime.total_seconds())
        try:
            data = _verified.load(signer, ("session", self._signer[0]), cookie, max_age)
        except BadSignature:
            return self.session_class()
        return self.session_class(dict(data))


class RememberingAuth(QuartAuth):
    """quart-auth, with verified sign-in cookies kept."""

    def load_token(self, token: str, app: Quart | None = None) -> str | None:
        app = app or current_app
        if app.config.get("SECRET_KEY_FALLBACKS"):
            return super().load_token(token, app)
        serializer = self.serializer_class(app.secret_key, self.salt)
        try:
            scope = ("auth", app.secret_key, self.salt)
            return _verified.load(serializer, scope, token, self.duration)
        except BadSignature:  # SignatureExpired is one
            return None
