"""Live push across workers: a real two-worker server, the stream on one connection and
the gateway's webhook on others, which the kernel hands to either worker.

On SQLite the workers learn of each other's changes through `live_changes`; on
PostgreSQL through NOTIFY. Either way the event must arrive; how soon (the contract's
half second) is bench/push.py's to measure, not a test's on a busy machine.
"""

from __future__ import annotations

import asyncio

import pytest

from railserve.db import is_sqlite
from railserve.payment.models import LiveChange, Payment
from tests.concurrency.conftest import gateway_event, http_world
from tests.support.events import http_stream

pytestmark = pytest.mark.server

SOON = 30.0  # seconds a test waits for an event that must come
ROUNDS = 6  # each webhook lands on either worker: several rounds cross between them


@pytest.fixture(scope="module")
def gateway_delay() -> float:
    return 30.0  # the test speaks for the gateway


async def test_a_settlement_on_any_worker_reaches_the_stream(live_server, accounts):
    async with http_world(live_server, accounts) as world:
        person = await world.new_passenger()
        train = await world.new_train(seats=20)
        for round_number in range(ROUNDS):
            kind = "payment.failed" if round_number % 3 == 2 else "payment.succeeded"
            booking_id = await person.book(train)
            payment = await Payment.get(transaction_id=await person.start(booking_id))
            path = f"/payment/events/{payment.transaction_id}"
            async with http_stream(person.client, path) as (response, reader):
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                first = await reader.next()
                assert first.name == "status" and 'data-state="pending"' in first.data

                status, reply = await world.webhook(gateway_event(payment, kind, "Declined"))
                assert (status, reply["result"]) == (200, "applied")
                settled = await reader.next_named("status", timeout=SOON)
                state = "success" if kind == "payment.succeeded" else "failed"
                assert f'data-state="{state}"' in settled.data
                assert (await reader.next()).name == "close"
                if is_sqlite(live_server.env["RAILSERVE_DATABASE_URL"]):
                    # The workers heard of it through the table, not in-process.
                    assert await LiveChange.exists(transaction_id=payment.transaction_id)


async def test_streams_that_hang_up_do_not_stop_the_server(live_server, accounts):
    async with http_world(live_server, accounts) as world:
        person = await world.new_passenger()
        train = await world.new_train(seats=5)
        payment = await Payment.get(transaction_id=await person.start(await person.book(train)))
        path = f"/payment/events/{payment.transaction_id}"

        async def open_and_drop() -> None:
            async with http_stream(person.client, path) as (_, reader):
                assert (await reader.next()).name == "status"

        await asyncio.gather(*(open_and_drop() for _ in range(40)))
        status = await person.status(payment.transaction_id)
        assert status["status"] == "pending"
        await world.webhook(gateway_event(payment, "payment.succeeded"))
        assert (await person.wait_final(payment.transaction_id))["status"] == "success"
        await world.check()
