"""Metrics summed over the two workers of one real server, its JSON logs and readiness.

PRODUCT.md "Running it": a scrape of a two-worker `railserve serve` after a payment, a
refund and a refused webhook shows each counted once; a stream opened and closed, a circuit
breaker opening; every log line of a request carries its id; `/readyz` answers 503 once the
database is gone.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.concurrency.conftest import World, http_world
from tests.support.database import DatabaseFactory, _pg, using_postgres
from tests.support.passenger import card
from tests.support.server import LiveServer
from tests.support.waiting import eventually

pytestmark = pytest.mark.server

TOKEN = "server-metrics-token"
CARD_PROCESSING_ERROR = "4000 0000 0000 0119"
Samples = dict[tuple[str, tuple], float]


@pytest.fixture(scope="module")
def live_server(database_factory: DatabaseFactory) -> Iterator[LiveServer]:
    server = LiveServer(
        database_factory.new_url(),
        workers=2,
        gateway_delay="0.2",
        metrics_token=TOKEN,
        log_format="json",
        gateway_cooldown="5",
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def world(live_server: LiveServer, accounts: list) -> AsyncIterator[World]:
    async with http_world(live_server, accounts) as world:
        yield world


async def scrape(server: LiveServer) -> Samples:
    """One scrape on a connection of its own (either worker may answer it)."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        response = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text[:500]
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


async def until(server: LiveServer, check, timeout: float = 20.0) -> Samples:
    """Scrape until `check(samples)` holds."""
    deadline = time.monotonic() + timeout
    while True:
        found = await scrape(server)
        if check(found):
            return found
        assert time.monotonic() < deadline, f"the metrics never showed it: {found}"
        await asyncio.sleep(0.1)


def moved(before: Samples, after: Samples, name: str, by: float = 1, **labels: str) -> bool:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0) - before.get(key, 0) == by


def log_lines(server: LiveServer) -> list[dict]:
    lines = server.log_path.read_text(errors="replace").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


async def lines_when(server: LiveServer, holds) -> list[dict]:
    """The log's lines once `holds(lines)`: a worker writes them from its log thread, a
    moment after the answer."""

    async def read() -> list[dict]:
        return log_lines(server)

    return await eventually(read, holds)


async def test_every_request_is_counted_once_whichever_worker_answers(live_server):
    before = await scrape(live_server)
    for _ in range(20):  # a connection each: the workers share them
        async with httpx.AsyncClient(base_url=live_server.url) as client:
            assert (await client.get("/healthz")).status_code == 200
    for _ in range(4):  # each scrape, from either worker, holds all twenty
        after = await scrape(live_server)
        assert moved(
            before,
            after,
            "railserve_http_requests_total",
            20,
            endpoint="running.healthz",
            code="200",
        )

    def pids(lines: list[dict]) -> set[int]:
        return {line["pid"] for line in lines if line.get("endpoint") == "running.healthz"}

    assert len(pids(await lines_when(live_server, lambda lines: len(pids(lines)) == 2))) == 2, (
        "both workers answered"
    )


async def test_a_payment_a_refund_and_a_refused_webhook_are_each_counted_once(world, live_server):
    before = await scrape(live_server)
    person = await world.new_passenger()
    booking_id = await person.book(await world.new_train(seats=10))
    data = await person.pay(booking_id)
    assert data["status"] == "success"
    cancelled = await person.post(f"/bookings/{booking_id}/cancel")
    assert cancelled.status_code == 303
    async with httpx.AsyncClient(base_url=live_server.url) as client:
        refused = await client.post(
            "/payment/webhook", content=b"{}", headers={"RailServe-Signature": "t=1,v1=00"}
        )
    assert refused.status_code == 401

    after = await until(
        live_server,
        lambda now: moved(before, now, "railserve_refunds_total", status="succeeded"),
    )
    assert moved(
        before,
        after,
        "railserve_payment_attempts_total",
        method="credit_card",
        gateway="simulated",
        outcome="success",
    )
    assert moved(before, after, "railserve_payment_settle_seconds_count")
    assert moved(before, after, "railserve_refunds_total", status="pending")
    assert moved(before, after, "railserve_webhooks_total", provider="simulated", code="401")
    assert after[("railserve_refunds_pending", ())] == 0
    assert after[("railserve_mail_outbox_pending", ())] == 0


async def test_a_stream_counts_while_it_is_open(world, live_server):
    person = await world.new_passenger()
    # Waitlisted (two passengers, one seat): its card may still change, so it stays open.
    data = await person.pay(await person.book(await world.new_train(seats=1), ["A", "B"]))
    assert data["booking_status"] == "waitlisted"
    before = await scrape(live_server)
    streams = ("railserve_live_streams", ())
    url = f"/payment/events/{data['transaction_id']}"
    async with person.client.stream("GET", url) as response:
        assert response.status_code == 200
        # Read on while the scrapes look (leaving the lines' iterator would hang up).
        shown = asyncio.Event()
        reader = asyncio.create_task(_read(response.aiter_lines(), shown), name="stream reader")
        try:
            await asyncio.wait_for(shown.wait(), 20)
            await until(live_server, lambda now: now[streams] == before[streams] + 1)
        finally:
            reader.cancel()
    await until(live_server, lambda now: now[streams] == before[streams])


async def _read(lines, shown: asyncio.Event) -> None:
    async for line in lines:
        if line.startswith("event: status"):
            shown.set()


async def test_each_request_has_one_id_on_every_line(world, live_server):
    person = await world.new_passenger()
    booking_id = await person.book(await world.new_train(seats=10))
    form = {**await person.pay_form(booking_id), **card(), "csrf_token": person.csrf}
    response = await person.client.post(
        f"/payment/process/{booking_id}", data=form, headers={"X-Request-ID": "srv-pay.1"}
    )
    assert response.status_code == 303
    assert response.headers["X-Request-ID"] == "srv-pay.1"
    transaction_id = response.headers["location"].rsplit("/", 1)[-1]
    await person.wait_final(transaction_id)

    def of_request(lines: list[dict]) -> list[dict]:
        return [line for line in lines if line.get("request_id") == "srv-pay.1"]

    def complete(lines: list[dict]) -> bool:
        mine = of_request(lines)
        return any(line["logger"] == "railserve.request" for line in mine) and any(
            line.get("transaction_id") == transaction_id for line in mine
        )

    lines = of_request(await lines_when(live_server, complete))
    assert {line["pid"] for line in lines} == {lines[0]["pid"]}, "one request, one worker"
    request_line = [line for line in lines if line["logger"] == "railserve.request"]
    assert len(request_line) == 1
    assert request_line[0]["endpoint"] == "payment.process" and request_line[0]["status"] == 303
    assert request_line[0]["user_id"] == person.user_id
    started = [line for line in lines if line.get("transaction_id") == transaction_id]
    assert started and started[0]["from"] is None and started[0]["to"] == "pending"


async def test_a_breaker_opening_marks_its_gateway_unavailable(world, live_server):
    person = await world.new_passenger()
    booking_id = await person.book(await world.new_train(seats=10))
    gone = ("railserve_gateway_available", (("gateway", "simulated"),))
    assert (await scrape(live_server))[gone] == 1
    for _ in range(12):  # three errors in a row open one worker's breaker
        form = {**await person.pay_form(booking_id), **card(CARD_PROCESSING_ERROR)}
        response = await person.post(f"/payment/process/{booking_id}", form)
        if response.status_code == 303:
            await person.wait_final(response.headers["location"].rsplit("/", 1)[-1])
        if (await scrape(live_server))[gone] == 0:
            break
    else:
        raise AssertionError("no breaker opened")
    # The cooldown (5 s) passes, and the gateway is offered again.
    await until(live_server, lambda now: now[gone] == 1, timeout=15)


@pytest.mark.skipif(not using_postgres(), reason="a PostgreSQL database to drop")
async def test_not_ready_once_the_database_is_gone(live_server):
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as client:
        assert (await client.get("/readyz")).status_code == 200
        url = live_server.env["RAILSERVE_DATABASE_URL"]
        await _pg(url, f'DROP DATABASE "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
        for _ in range(4):  # each worker
            async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as fresh:
                response = await fresh.get("/readyz")
            assert response.status_code == 503
            assert "database unreachable" in response.text
        assert (await client.get("/healthz")).status_code == 200
