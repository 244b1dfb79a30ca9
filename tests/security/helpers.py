"""What the security tests share: a picture of the database, raw posts, signed webhooks."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any
from urllib.parse import urlencode

from quart.testing import QuartClient

from railserve.models import Booking, Mail, Notification, Train, User
from railserve.payment.models import Payment, PaymentEvent, Refund, WebhookEvent
from railserve.payment.providers.models import SimulatedCharge
from railserve.payment.signature import sign
from tests.conftest import WEBHOOK_SECRET
from tests.support.passenger import Passenger

MODELS = (
    User,
    Train,
    Booking,
    Notification,
    Mail,
    Payment,
    PaymentEvent,
    WebhookEvent,
    Refund,
)
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def snapshot() -> dict[str, Any]:
    """Everything a request could change: row counts, statuses, seats, read flags."""
    picture: dict[str, Any] = {model.__name__: await model.all().count() for model in MODELS}
    picture["SimulatedCharge"] = await SimulatedCharge.all().count()
    picture["bookings"] = sorted(await Booking.all().values_list("id", "status"))
    picture["payments"] = sorted(await Payment.all().values_list("id", "status"))
    picture["seats"] = sorted(await Train.all().values_list("id", "seats_left"))
    picture["unread"] = await Notification.filter(read=False).count()
    return picture


async def post_form(
    client: QuartClient,
    path: str,
    form: dict[str, Any] | None = None,
    *,
    token: str | None = None,
    htmx: bool = False,
    headers: dict[str, str] | None = None,
    address: str | None = None,
):
    """POST a urlencoded form; `token` goes in the field (plain) or the header (htmx)."""
    data = dict(form or {})
    sent = dict(FORM)
    if htmx:
        sent["HX-Request"] = "true"
        if token is not None:
            sent["X-CSRF-Token"] = token
    elif token is not None:
        data["csrf_token"] = token
    sent.update(headers or {})
    scope = {"client": (address, 40000)} if address else None
    return await client.post(path, data=urlencode(data, doseq=True), headers=sent, scope_base=scope)


async def visitor(app, path: str = "/auth/login") -> Passenger:
    """Someone not logged in, holding the session's CSRF token from a login page."""
    person = Passenger(app, f"v-{secrets.token_hex(6)}@example.com", "Visitor")
    await person.refresh_csrf(path)
    return person


def event(
    transaction_id: str,
    kind: str = "payment.succeeded",
    *,
    amount: str = "1250.00",
    currency: str = "INR",
    event_id: str | None = None,
    **extra: Any,
) -> bytes:
    """A gateway event body, as PRODUCT.md defines it."""
    body = {
        "id": event_id or "evt_" + secrets.token_hex(12),
        "type": kind,
        "transaction_id": transaction_id,
        "amount": amount,
        "currency": currency,
        "failure_reason": "Card declined" if kind == "payment.failed" else None,
        "created": int(time.time()),
    }
    body.update(extra)
    return json.dumps(body).encode()


async def send_webhook(
    app,
    body: bytes,
    *,
    secret: str = WEBHOOK_SECRET,
    timestamp: int | None = None,
    header: str | None = None,
):
    """POST an event from a client with no session, signed as the gateway signs it."""
    if header is None:
        header = sign(secret, body, int(time.time()) if timestamp is None else timestamp)
    headers = {"Content-Type": "application/json"}
    if header:
        headers["RailServe-Signature"] = header
    return await app.test_client().post("/payment/webhook", data=body, headers=headers)
