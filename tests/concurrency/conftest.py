"""One scenario, two ways: in-process through Quart's test client, and over HTTP.

`world` is parametrised: `client` runs the app in this process (the existing `app_with`
fixture) and drives it with many asyncio tasks at once; `http` drives a real server with
two workers over httpx. Either way the test process reads the same database through the
ORM to check what happened, and ends with the invariant checker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from quart import Quart

from railserve import db
from railserve.config import Settings
from railserve.invariants import violations
from railserve.models import Train
from railserve.payment.models import Payment, PaymentStatus
from railserve.payment.signature import sign
from tests.support.database import DatabaseFactory
from tests.support.passenger import Passenger, make_train
from tests.support.server import LiveServer, railserve


@pytest.fixture(scope="module")
def gateway_delay() -> float:
    """Seconds the simulated gateway takes; a module overrides it when it needs time."""
    return 0.3


@pytest.fixture(scope="session")
def live_servers() -> Iterator[dict[float, LiveServer]]:
    """This test process's two-worker servers, one per gateway delay, stopped at the end."""
    servers: dict[float, LiveServer] = {}
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture(scope="module")
def live_server(
    live_servers: dict[float, LiveServer], database_factory: DatabaseFactory, gateway_delay: float
) -> LiveServer:
    """A real server with two workers, started once and shared by every module (on this
    xdist worker) that wants the same gateway delay: each test makes its own trains and
    passengers, and the invariants hold over the whole database whoever wrote it."""
    server = live_servers.get(gateway_delay)
    if server is None or server.process is None or server.process.poll() is not None:
        server = LiveServer(database_factory.new_url(), workers=2, gateway_delay=str(gateway_delay))
        live_servers[gateway_delay] = server.start()
    return server


@pytest.fixture(scope="module")
def accounts() -> list[dict[str, Any]]:
    """Sign-ins on the module's server, reused by its http tests (each costs a round of
    requests); each test still makes its own trains and bookings."""
    return []


@pytest.fixture(params=["client", pytest.param("http", marks=pytest.mark.server)])
def target(request: pytest.FixtureRequest) -> Settings | LiveServer:
    # Resolved here, outside the event loop: making a PostgreSQL database runs its own loop.
    if request.param == "http":
        return request.getfixturevalue("live_server")
    return request.getfixturevalue("settings")


@dataclass
class World:
    """What a scenario needs from where it runs."""

    kind: str
    webhook_secret: str
    app: Quart | None = None
    server: LiveServer | None = None
    accounts: list[dict[str, Any]] = field(default_factory=list)
    people: list[Any] = field(default_factory=list)

    async def new_passenger(self) -> Any:
        """A signed-in passenger this test has not used yet."""
        return (await self.new_passengers(1))[0]

    async def new_passengers(self, count: int) -> list[Any]:
        if self.app is not None:
            made = await asyncio.gather(*(Passenger.sign_up(self.app) for _ in range(count)))
            self.people += made
            return list(made)
        from tests.concurrency.web import WebPassenger

        assert self.server is not None
        used = len(self.people)
        missing = max(0, used + count - len(self.accounts))
        fresh = await asyncio.gather(
            *(WebPassenger.sign_up(self.server.url) for _ in range(missing))
        )
        self.accounts += [person.account() for person in fresh]
        for person in fresh:
            await person.aclose()
        made = [
            WebPassenger.resume(self.server.url, account)
            for account in self.accounts[used : used + count]
        ]
        self.people += made
        return made

    async def new_train(self, seats: int) -> Train:
        if self.server is None:
            return await make_train(seats=seats)
        number = uuid.uuid4().hex[:8].upper()
        departs = (datetime.now(UTC) + timedelta(days=3)).isoformat(timespec="minutes")
        args = ["add-train", "--number", number, "--name", "Race Express", "--origin", "Pune"]
        args += ["--destination", "Goa", "--departs", departs, "--seats", str(seats)]
        done = await asyncio.to_thread(railserve, *args, "--fare", "1250.00", env=self.server.env)
        assert done.returncode == 0, done.stderr
        return await Train.get(number=number)

    async def webhook(self, event: dict[str, Any]) -> tuple[int, dict]:
        """Deliver one event, signed as the gateway signs it."""
        body = json.dumps(event).encode()
        headers = {
            "RailServe-Signature": sign(self.webhook_secret, body, int(time.time())),
            "Content-Type": "application/json",
        }
        if self.app is not None:
            response = await self.app.test_client().post(
                "/payment/webhook", data=body, headers=headers
            )
            return response.status_code, await response.get_json()
        assert self.server is not None
        async with httpx.AsyncClient(base_url=self.server.url, timeout=30) as client:
            reply = await client.post("/payment/webhook", content=body, headers=headers)
        return reply.status_code, reply.json()

    async def hang_up(
        self,
        person: Any,
        method: str,
        path: str,
        form: dict[str, str] | None = None,
        *,
        after: float,
        whole_body: bool = True,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Send a request and hang up `after` seconds later, answered or not."""
        body = urlencode({**(form or {}), "csrf_token": person.csrf}).encode() if form else b""
        headers = dict(headers or {})
        if form:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if self.app is not None:
            connection = person.client.request(path, method=method, headers=headers)
            async with connection:
                await connection.send(body if whole_body else body[: len(body) // 2])
                if whole_body:
                    await connection.send_complete()
                await asyncio.sleep(after)
                await connection.disconnect()
            return
        assert self.server is not None
        _reader, writer = await asyncio.open_connection("127.0.0.1", self.server.port)
        head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.server.port}"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        head += [f"Content-Length: {len(body)}", f"Cookie: {person.cookie_header()}", "", ""]
        writer.write("\r\n".join(head).encode() + (body if whole_body else body[:10]))
        await writer.drain()
        await asyncio.sleep(after)
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

    async def settled(self, timeout: float = 20.0) -> None:
        """Wait until no attempt is pending (the gateway has answered them all)."""
        deadline = time.monotonic() + timeout
        while await Payment.filter(status=PaymentStatus.PENDING).exists():
            pending = await Payment.filter(status=PaymentStatus.PENDING).values_list(
                "transaction_id", flat=True
            )
            assert time.monotonic() < deadline, f"attempts left pending: {pending}"
            await asyncio.sleep(0.1)

    async def check(self) -> None:
        """The invariant checker, in-process; over HTTP also `railserve check` on the server's database."""
        assert await violations() == []
        if self.server is not None:
            done = await asyncio.to_thread(railserve, "check", env=self.server.env)
            assert done.returncode == 0, done.stdout + done.stderr


@contextlib.asynccontextmanager
async def http_world(server: LiveServer, accounts: list | None = None) -> AsyncIterator[World]:
    """A world driving `server` over HTTP, with this process reading its database."""
    await db.init(server.env["RAILSERVE_DATABASE_URL"])
    kwargs = {"accounts": accounts} if accounts is not None else {}
    world = World("http", server.env["RAILSERVE_WEBHOOK_SECRET"], server=server, **kwargs)
    try:
        yield world
    finally:
        for person in world.people:
            await person.aclose()
        await db.close()


@pytest.fixture
async def world(
    target: Settings | LiveServer, app_with, gateway_delay: float, accounts: list
) -> AsyncIterator[World]:
    if isinstance(target, LiveServer):
        async with http_world(target, accounts) as world:
            yield world
        return
    async with app_with(target, gateway_delay=gateway_delay) as app:
        yield World("client", target.webhook_secret, app=app)


def new_key() -> str:
    """An idempotency key of the client's own making (the contract allows it)."""
    return secrets.token_urlsafe(24)


def gateway_event(payment: Payment, kind: str, reason: str | None = None) -> dict[str, Any]:
    """A gateway event for `payment`, as the simulator would send it."""
    return {
        "id": "evt_" + secrets.token_hex(12),
        "type": kind,
        "transaction_id": payment.transaction_id,
        "amount": f"{payment.amount // 100}.{payment.amount % 100:02d}",
        "currency": payment.currency,
        "failure_reason": reason,
        "created": int(time.time()),
    }
