"""A passenger over real HTTP (httpx), with the same methods as tests.support.Passenger.

It does what a browser without JavaScript does: reads the csrf token from
`<meta name="csrf-token">`, the pay form's hidden fields from the page, and follows
nothing by itself, so that every status code is seen.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx

from railserve.models import Train
from tests.support.passenger import HX, JSON, PASSWORD, card, poll_until_final
from tests.support.waiting import PATIENCE

_META_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
_FIELD = r'name="{}" value="([^"]+)"'
_TXN = re.compile(r'id="payment-(TXN[A-Z0-9]{16})"')


class WebPassenger:
    def __init__(self, base_url: str, email: str) -> None:
        self.base_url = base_url
        self.client = httpx.AsyncClient(base_url=base_url, timeout=30.0)
        self.email = email
        self.csrf = ""
        self.user_id = 0

    @classmethod
    async def sign_up(cls, base_url: str, name: str = "Asha Rao") -> WebPassenger:
        person = cls(base_url, f"w-{uuid.uuid4().hex[:12]}@example.com")
        await person.refresh_csrf("/auth/register")
        response = await person.post(
            "/auth/register", {"name": name, "email": person.email, "password": PASSWORD}
        )
        assert response.status_code == 303, response.text[:500]
        await person.refresh_csrf("/")
        from railserve.models import User

        person.user_id = (await User.get(email=person.email)).id
        return person

    def account(self) -> dict[str, Any]:
        """What it takes to come back signed in, in another test's event loop."""
        return {
            "email": self.email,
            "cookies": dict(self.client.cookies),
            "csrf": self.csrf,
            "user_id": self.user_id,
        }

    @classmethod
    def resume(cls, base_url: str, account: dict[str, Any]) -> WebPassenger:
        person = cls(base_url, account["email"])
        person.client.cookies.update(account["cookies"])
        person.csrf, person.user_id = account["csrf"], account["user_id"]
        return person

    async def refresh_csrf(self, path: str = "/") -> str:
        response = await self.client.get(path)
        match = _META_CSRF.search(response.text)
        assert match, f"no csrf meta on {path}: {response.status_code}"
        self.csrf = match.group(1)
        return self.csrf

    def cookie_header(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self.client.cookies.items())

    async def get(self, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return await self.client.get(path, headers=headers)

    async def post(
        self, path: str, form: dict[str, Any] | None = None, *, htmx: bool = False, **kw: Any
    ) -> httpx.Response:
        data = dict(form or {})
        headers = dict(HX) if htmx else {}
        if htmx:
            headers["X-CSRF-Token"] = self.csrf
        else:
            data.setdefault("csrf_token", self.csrf)
        return await self.client.post(path, data=data, headers=headers, **kw)

    async def book(self, train: Train, passengers: list[str] | None = None) -> int:
        response = await self.post(
            "/bookings", {"train_id": str(train.id), "passenger_name": passengers or ["Asha Rao"]}
        )
        assert response.status_code == 303, response.text[:500]
        return int(response.headers["location"].rstrip("/").rsplit("/", 1)[-1])

    async def pay_form(self, booking_id: int) -> dict[str, str]:
        html = (await self.get(f"/payment/pay/{booking_id}")).text
        key = re.search(_FIELD.format("idempotency_key"), html)
        amount = re.search(_FIELD.format("amount"), html)
        assert key and amount, html[:2000]
        return {"idempotency_key": key.group(1), "amount": amount.group(1)}

    async def start(self, booking_id: int, instrument: dict[str, str] | None = None) -> str:
        form = {**await self.pay_form(booking_id), **(instrument or card())}
        response = await self.post(f"/payment/process/{booking_id}", form)
        assert response.status_code in (200, 303), response.text[:500]
        if response.status_code == 303:
            return response.headers["location"].rsplit("/", 1)[-1]
        match = _TXN.search(response.text)
        assert match
        return match.group(1)

    async def status(self, transaction_id: str) -> dict[str, Any]:
        response = await self.get(f"/payment/status/{transaction_id}", JSON)
        assert response.status_code == 200, response.text[:500]
        return response.json()

    async def wait_final(self, transaction_id: str, timeout: float = PATIENCE) -> dict[str, Any]:
        return await poll_until_final(self.status, transaction_id, timeout, interval=0.05)

    async def pay(self, booking_id: int, instrument: dict[str, str] | None = None) -> dict:
        return await self.wait_final(await self.start(booking_id, instrument))

    async def aclose(self) -> None:
        await self.client.aclose()
