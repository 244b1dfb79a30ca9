"""Domain errors, raised by services and turned into responses in one place (app.py)."""

from __future__ import annotations


class DomainError(Exception):
    """Something the user asked for that cannot be done; carries the HTTP status."""

    status = 400

    def __init__(self, message: str, *, errors: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or {}


class Invalid(DomainError):
    """Invalid fields: `errors` maps each field name to its message."""

    status = 422


class BadCredentials(DomainError):
    status = 401


class NotFound(DomainError):
    status = 404

    def __init__(self, message: str = "Not found.") -> None:
        super().__init__(message)


class Conflict(DomainError):
    status = 409


class GatewayRefused(DomainError):
    """The payment gateway said no (a refund it would not make, say)."""

    status = 409


class BadRequest(DomainError):
    status = 400


class BadSignature(DomainError):
    status = 401


class Unavailable(DomainError):
    """Nothing can do this right now (no payment gateway takes the method): try later."""

    status = 503
