"""A passenger driving the app through Quart's test client, as a browser would."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from quart import Quart
from quart.testing import QuartClient

from railserve.models import Train
from tests.support.waiting import PATIENCE

PASSWORD = "correct-horse-battery"
CARD_OK = "4242 4242 4242 4242"
CARD_DECLINED = "4000 0000 0000 0002"
CARD_NO_FUNDS = "4000 0000 0000 9995"
HX = {"HX-Request": "true"}
JSON = {"Accept": "application/json"}
_META_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
_KEY = re.compile(r'name="idempotency_key" value="([^"]+)"')


def card(number: str = CARD_OK, **overrides: str) -> dict[str, str]:
    year = (datetime.now(UTC).year + 2) % 100
    fields = {
        "method": "credit_card",
        "card_number": number,
        "card_expiry": f"12/{year:02d}",
        "card_cvv": "123",
        "card_name": "Asha Rao",
    }
    fields.update(overrides)
    return fields


async def make_train(
    number: str | None = None, seats: int = 100, fare: int = 125000, name: str = "Test Express"
) -> Train:
    return await Train.create(
        number=number or uuid.uuid4().hex[:8].upper(),
        name=name,
        origin="Mumbai",
        destination="Pune",
        departs_at=datetime.now(UTC) + timedelta(days=3),
        total_seats=seats,
        seats_left=seats,
        fare=fare,
    )


async def poll_until_final(
    status: Callable[[str], Awaitable[dict[str, Any]]],
    transaction_id: str,
    timeout: float,
    interval: float,
) -> dict[str, Any]:
    """Ask `status` until the attempt leaves `pending`; fail after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        data = await status(transaction_id)
        if data["status"] != "pending":
            return data
        assert asyncio.get_running_loop().time() < deadline, f"still pending: {data}"
        await asyncio.sleep(interval)


class Passenger:
    def __init__(self, app: Quart, email: str, name: str) -> None:
        self.app = app
        self.client: QuartClient = app.test_client()
        self.email = email
        self.name = name
        self.csrf = ""
        self.user_id = 0

    @classmethod
    async def sign_up(
        cls, app: Quart, name: str = "Asha Rao", email: str | None = None
    ) -> Passenger:
        person = cls(app, email or f"p-{uuid.uuid4().hex[:12]}@example.com", name)
        await person.refresh_csrf("/auth/register")
        response = await person.post(
            "/auth/register", {"name": name, "email": person.email, "password": PASSWORD}
        )
        assert response.status_code == 303, await response.get_data(as_text=True)
        await person.refresh_csrf("/")
        from railserve.models import User

        person.user_id = (await User.get(email=person.email.lower())).id
        return person

    async def refresh_csrf(self, path: str = "/") -> str:
        response = await self.client.get(path)
        match = _META_CSRF.search(await response.get_data(as_text=True))
        assert match, f"no csrf meta on {path}"
        self.csrf = match.group(1)
        return self.csrf

    async def get(self, path: str, headers: dict[str, str] | None = None):
        return await self.client.get(path, headers=headers)

    async def post(
        self,
        path: str,
        form: dict[str, Any] | None = None,
        *,
        htmx: bool = False,
        csrf: bool = True,
    ):
        data = dict(form or {})
        headers = dict(HX) if htmx else {}
        if csrf and htmx:
            headers["X-CSRF-Token"] = self.csrf
        elif csrf:
            data.setdefault("csrf_token", self.csrf)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        return await self.client.post(path, data=urlencode(data, doseq=True), headers=headers)

    async def text(self, path: str, headers: dict[str, str] | None = None) -> str:
        response = await self.get(path, headers)
        return await response.get_data(as_text=True)

    async def book(self, train: Train, passengers: list[str] | None = None) -> int:
        response = await self.post(
            "/bookings", {"train_id": str(train.id), "passenger_name": passengers or ["Asha Rao"]}
        )
        assert response.status_code == 303, await response.get_data(as_text=True)
        return int(response.headers["Location"].rstrip("/").rsplit("/", 1)[-1])

    async def pay_form(self, booking_id: int) -> dict[str, str]:
        """The hidden fields of a fresh pay form: key, amount and token."""
        html = await self.text(f"/payment/pay/{booking_id}")
        key = _KEY.search(html)
        amount = re.search(r'name="amount" value="([^"]+)"', html)
        assert key and amount, html[:2000]
        return {"idempotency_key": key.group(1), "amount": amount.group(1)}

    async def start(self, booking_id: int, instrument: dict[str, str] | None = None, **kw) -> str:
        """Start an attempt as a plain browser; return its transaction id."""
        form = {**await self.pay_form(booking_id), **(instrument or card())}
        response = await self.post(f"/payment/process/{booking_id}", form, **kw)
        assert response.status_code in (200, 303), await response.get_data(as_text=True)
        if response.status_code == 303:
            return response.headers["Location"].rsplit("/", 1)[-1]
        match = re.search(r'id="payment-(TXN[A-Z0-9]{16})"', await response.get_data(as_text=True))
        assert match
        return match.group(1)

    async def status(self, transaction_id: str) -> dict[str, Any]:
        response = await self.get(f"/payment/status/{transaction_id}", JSON)
        assert response.status_code == 200
        return await response.get_json()

    async def wait_final(self, transaction_id: str, timeout: float = PATIENCE) -> dict[str, Any]:
        return await poll_until_final(self.status, transaction_id, timeout, interval=0.02)

    async def pay(
        self, booking_id: int, instrument: dict[str, str] | None = None
    ) -> dict[str, Any]:
        return await self.wait_final(await self.start(booking_id, instrument))
