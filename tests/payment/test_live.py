"""Live push: the attempt's event stream, in-process (one worker, the app's own hub)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import time

import pytest
from quart import Quart

from railserve.models import Booking, BookingStatus
from railserve.payment.models import Payment, PaymentStatus
from railserve.payment.signature import sign
from tests.conftest import WEBHOOK_SECRET
from tests.support.events import EVENT_STREAM, EventReader, in_process_stream
from tests.support.passenger import CARD_DECLINED, HX, Passenger, card, make_train

# How long a test waits for an event that must come. Generous on purpose: these tests
# check that it comes, and a busy machine may take seconds; how fast it comes (the
# contract's half second) is measured by bench/push.py, not asserted here.
SOON = 30.0


async def until(condition, timeout: float = SOON) -> None:
    """Wait until `condition()` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.02)


def events_path(transaction_id: str) -> str:
    return f"/payment/events/{transaction_id}"


def hub(app: Quart):
    return app.extensions["railserve.live"]


async def webhook(app: Quart, payment: Payment, kind: str = "payment.succeeded") -> str:
    """Deliver a signed gateway event in-process; return its result."""
    body = json.dumps(
        {
            "id": "evt_" + secrets.token_hex(12),
            "type": kind,
            "transaction_id": payment.transaction_id,
            "amount": f"{payment.amount // 100}.{payment.amount % 100:02d}",
            "currency": payment.currency,
            "failure_reason": "Declined by bank" if kind == "payment.failed" else None,
            "created": int(time.time()),
        }
    ).encode()
    headers = {
        "RailServe-Signature": sign(WEBHOOK_SECRET, body, int(time.time())),
        "Content-Type": "application/json",
    }
    response = await app.test_client().post("/payment/webhook", data=body, headers=headers)
    assert response.status_code == 200, await response.get_data(as_text=True)
    return (await response.get_json())["result"]


async def pending_attempt(person: Passenger, seats: int = 10) -> Payment:
    booking_id = await person.book(await make_train(seats=seats))
    return await Payment.get(transaction_id=await person.start(booking_id))


def card_state(html: str) -> str:
    match = re.search(r'data-state="([a-z_]+)"', html)
    assert match, html[:500]
    return match.group(1)


async def test_only_the_owner_may_open_the_stream(slow_app):
    owner = await Passenger.sign_up(slow_app)
    other = await Passenger.sign_up(slow_app)
    payment = await pending_attempt(owner)
    path = events_path(payment.transaction_id)

    assert (await other.get(path, EVENT_STREAM)).status_code == 404
    for wrong in (payment.transaction_id + "X", payment.transaction_id.lower(), "TXN123"):
        assert (await owner.get(events_path(wrong), EVENT_STREAM)).status_code == 404
    assert (await owner.get(events_path("TXN" + "A" * 16), EVENT_STREAM)).status_code == 404

    anonymous = await slow_app.test_client().get(path, headers=EVENT_STREAM)
    assert anonymous.status_code == 303
    assert anonymous.headers["Location"].startswith("/auth/login?next=")
    assert hub(slow_app).subscriber_count() == 0


async def test_first_event_is_the_card_then_the_settlement_then_close(slow_app):
    person = await Passenger.sign_up(slow_app)
    payment = await pending_attempt(person)

    async with in_process_stream(person.client, events_path(payment.transaction_id)) as (
        connection,
        reader,
    ):
        first = await reader.next()
        assert connection.status_code == 200
        assert connection.headers["Content-Type"].startswith("text/event-stream")
        assert connection.headers["Cache-Control"] == "no-cache"
        assert first.name == "status"
        assert card_state(first.data) == "pending"
        assert f'id="payment-{payment.transaction_id}"' in first.data
        assert 'sse-connect="/payment/events/' in first.data and 'sse-swap="status"' in first.data
        assert "\n" in first.data  # multi-line HTML travelled as several data: lines
        assert hub(slow_app).subscriber_count() == 1

        assert await webhook(slow_app, payment) == "applied"
        settled = await reader.next_named("status", timeout=SOON)
        assert card_state(settled.data) == "success"
        assert "Your seats are confirmed." in settled.data
        # A success card can still change (a refund, an operator, a promotion): the
        # stream stays open, the card keeps listening, and it never polls.
        assert "sse-connect" in settled.data and "hx-trigger" not in settled.data
        with pytest.raises(TimeoutError):
            await reader.next_named("close", timeout=0.3)
        cancelled = await person.post(f"/bookings/{payment.booking_id}/cancel")
        assert cancelled.status_code == 303
        refunded = await reader.next_named("status", timeout=SOON)
        assert card_state(refunded.data) == "refunded" and "Refund" in refunded.data
    await until(lambda: hub(slow_app).subscriber_count() == 0)


async def test_a_final_attempt_is_sent_once_and_closed(app, passenger, train):
    booking_id = await passenger.book(train)
    failed = await passenger.pay(booking_id, card(CARD_DECLINED))
    async with in_process_stream(passenger.client, events_path(failed["transaction_id"])) as (
        _,
        reader,
    ):
        status = await reader.next()
        assert status.name == "status" and card_state(status.data) == "failed"
        assert "Card declined" in status.data and "sse-connect" not in status.data
        assert (await reader.next()).name == "close"


async def test_a_waitlisted_card_hears_its_promotion(app, new_passenger):
    train = await make_train(seats=1)
    first, second = await new_passenger(), await new_passenger()
    confirmed = await first.pay(await first.book(train))
    waiting = await second.pay(await second.book(train))
    assert waiting["booking_status"] == "waitlisted"

    path = events_path(waiting["transaction_id"])
    async with in_process_stream(second.client, path) as (_, reader):
        opening = await reader.next()
        assert card_state(opening.data) == "success"
        assert "waitlist at position 1" in opening.data
        assert "sse-connect" in opening.data  # a waitlisted booking can still change

        cancelled = await first.post(f"/bookings/{confirmed['booking_id']}/cancel")
        assert cancelled.status_code in (200, 303)
        promoted = await reader.next_named("status", timeout=SOON)
        assert "Your seats are confirmed." in promoted.data
        assert "sse-connect" in promoted.data  # still open: a refund may follow
    booking = await Booking.get(id=waiting["booking_id"])
    assert booking.status == BookingStatus.CONFIRMED


async def test_an_idle_stream_sends_heartbeats(slow_app):
    slow_app.config["LIVE_HEARTBEAT"] = 0.05
    person = await Passenger.sign_up(slow_app)
    payment = await pending_attempt(person)
    async with in_process_stream(person.client, events_path(payment.transaction_id)) as (
        _,
        reader,
    ):
        assert (await reader.next()).name == "status"
        for _ in range(3):
            ping = await reader.next(timeout=SOON)
            assert ping == ping.__class__("comment", "ping")
    assert (await Payment.get(id=payment.id)).status == PaymentStatus.PENDING


async def test_many_streams_opened_and_dropped_leave_nothing_behind(slow_app):
    person = await Passenger.sign_up(slow_app)
    payment = await pending_attempt(person)
    path = events_path(payment.transaction_id)
    tasks_before = len(asyncio.all_tasks())

    async def open_and_drop(wait_for_first: bool) -> None:
        connection = person.client.request(path, method="GET", headers=EVENT_STREAM)
        async with connection:
            await connection.send_complete()
            if wait_for_first:
                event = await EventReader(connection.receive).next(timeout=30)
                assert event.name == "status"
            await connection.disconnect()

    # Half hang up once the card has arrived, half at once (mid-query, perhaps).
    await asyncio.gather(*(open_and_drop(i % 2 == 0) for i in range(500)))
    await until(
        lambda: hub(slow_app).subscriber_count() == 0 and len(asyncio.all_tasks()) <= tasks_before
    )

    polled = await asyncio.wait_for(
        person.get(f"/payment/status/{payment.transaction_id}", HX), SOON
    )
    assert polled.status_code == 200
    assert card_state(await polled.get_data(as_text=True)) == "pending"
    assert await webhook(slow_app, payment) == "applied"  # the app still writes, too


async def test_the_sweep_forgets_old_change_notices(app, settings):
    from datetime import timedelta

    from railserve import db
    from railserve.payment import live
    from railserve.payment.models import LiveChange
    from railserve.sweep import sweep

    if not db.is_sqlite(settings.database_url):
        pytest.skip("PostgreSQL announces with NOTIFY and writes no rows")
    old = await LiveChange.create(transaction_id="b:1")
    fresh = await LiveChange.create(transaction_id="b:2")
    await LiveChange.filter(id=old.id).update(
        created_at=old.created_at - live.KEEP_CHANGES - timedelta(seconds=1)
    )
    await sweep(settings, app.extensions["railserve.gateway"])
    assert await LiveChange.all().values_list("id", flat=True) == [fresh.id]


async def test_an_announcement_wakes_its_watchers_on_commit_and_never_on_rollback(app):
    from railserve import db
    from railserve.payment import live

    watcher = hub(app).subscribe([live.booking_key(41)])
    bystander = hub(app).subscribe([live.booking_key(42)])

    class Undo(Exception):
        pass

    async def rolled_back() -> None:
        await live.announce(booking_id=41)
        raise Undo

    with pytest.raises(Undo):
        await db.atomic(rolled_back)
    # Notices arrive in commit order: once a later commit's has come, the rolled-back
    # one would have come before it.
    await db.atomic(lambda: live.announce(booking_id=42))
    assert await bystander.wait(SOON)
    assert not watcher.dirty

    await db.atomic(lambda: live.announce(booking_id=41))
    assert await watcher.wait(SOON)
    assert not bystander.dirty
    hub(app).unsubscribe(watcher)
    hub(app).unsubscribe(bystander)
    assert hub(app).subscriber_count() == 0


async def test_a_commit_of_this_worker_wakes_its_streams_before_the_next_poll(
    app_with, settings, monkeypatch
):
    from railserve import db
    from railserve.payment import live
    from railserve.payment.live import hub as live_hub

    if not db.is_sqlite(settings.database_url):
        pytest.skip("PostgreSQL delivers NOTIFY at once")
    # The poller pauses far longer than the test waits, from its very first pause: only
    # the commit's own wake-up can bring the notice in time.
    pause = 120.0
    monkeypatch.setattr(live_hub, "POLL_INTERVAL", pause)
    monkeypatch.setattr(live_hub, "IDLE_INTERVAL", pause)
    async with app_with(settings) as paused:
        watcher = hub(paused).subscribe([live.booking_key(43)])
        await db.atomic(lambda: live.announce(booking_id=43))
        assert await watcher.wait(SOON)
        hub(paused).unsubscribe(watcher)


async def test_one_heartbeat_timer_serves_every_stream(slow_app):
    slow_app.config["LIVE_HEARTBEAT"] = 0.05
    person = await Passenger.sign_up(slow_app)
    payments = [await pending_attempt(person) for _ in range(3)]
    async with contextlib.AsyncExitStack() as streams:
        readers = [
            (await streams.enter_async_context(in_process_stream(person.client, path)))[1]
            for path in (events_path(p.transaction_id) for p in payments)
        ]
        for reader in readers:
            assert (await reader.next()).name == "status"
        for _ in range(2):
            for reader in readers:
                ping = await reader.next(timeout=SOON)
                assert ping == ping.__class__("comment", "ping")
        # The streams wait without a task (or timer) of their own for the heartbeat.
        waiting = [t.get_coro().__qualname__ for t in asyncio.all_tasks()]
        assert "Event.wait" not in waiting, waiting


def test_an_event_carries_each_line_of_its_data_on_a_data_line():
    from railserve.payment.live.stream import event

    assert event("status", "<div>\n  Asha\u2028Rao\r\n</div>") == (
        "event: status\ndata: <div>\ndata:   Asha\u2028Rao\ndata: </div>\n\n".encode()
    )


async def test_a_refund_that_settles_reaches_the_open_card(slow_app, settings):
    from railserve.payment.models import Refund
    from railserve.payment.refunds import handover

    person = await Passenger.sign_up(slow_app)
    payment = await pending_attempt(person)
    assert await webhook(slow_app, payment) == "applied"
    cancelled = await person.post(f"/bookings/{payment.booking_id}/cancel")
    assert cancelled.status_code == 303
    (refund,) = await Refund.filter(payment_id=payment.id)
    assert refund.status == "pending"  # the slow gateway has not paid it back yet

    async with in_process_stream(person.client, events_path(payment.transaction_id)) as (
        _,
        reader,
    ):
        opening = await reader.next()
        assert card_state(opening.data) == "refunded"
        assert "sse-connect" in opening.data  # its refund can still settle
        assert await handover.settle_refund(settings, refund.refund_id, True, reference="RF1")
        settled = await reader.next_named("status", timeout=SOON)
        assert "Paid back" in settled.data and "sse-connect" not in settled.data
        assert (await reader.next()).name == "close"


async def test_the_postgres_listener_comes_back_when_its_connection_drops(app, settings):
    from tortoise.connection import get_connections

    from railserve import db
    from railserve.payment import live

    if db.is_sqlite(settings.database_url):
        pytest.skip("SQLite has no listener connection")
    connection = get_connections().get("default")
    listening = (
        "SELECT pid FROM pg_stat_activity"
        " WHERE datname = current_database() AND query LIKE 'LISTEN%'"
    )
    [row] = await connection.execute_query_dict(listening)
    await connection.execute_query("SELECT pg_terminate_backend($1)", [row["pid"]])

    watcher = hub(app).subscribe([live.booking_key(7)])
    deadline = time.monotonic() + SOON
    while True:  # notices get through again once the listener is back
        await db.atomic(lambda: live.announce(booking_id=7))
        if await watcher.wait(0.5):
            break
        assert time.monotonic() < deadline, "the listener never came back"
    # Let the loop's earlier notices arrive (they come in commit order, before this one).
    marker = hub(app).subscribe([live.booking_key(8)])
    await db.atomic(lambda: live.announce(booking_id=8))
    assert await marker.wait(SOON)
    watcher.clear()
    await db.atomic(lambda: live.announce(booking_id=7))
    assert await watcher.wait(SOON)
    hub(app).unsubscribe(marker)
    [again] = await connection.execute_query_dict(listening)
    assert again["pid"] != row["pid"]
    hub(app).unsubscribe(watcher)


async def test_a_stream_ends_after_its_max_age_without_close_and_reopens_current(
    app_with, settings
):
    async with app_with(settings, stream_max_age=0.3, gateway_delay=30.0) as app:
        person = await Passenger.sign_up(app)
        payment = await pending_attempt(person)
        path = events_path(payment.transaction_id)
        async with in_process_stream(person.client, path) as (_, reader):
            assert card_state((await reader.next()).data) == "pending"
            rest = []
            # A pending card's stream would otherwise stay open (a heartbeat every 15 s):
            # it ends by itself here, within the reader's bound, without `close`.
            with pytest.raises(EOFError):
                while True:
                    rest.append((await reader.next(timeout=3)).name)
            assert "close" not in rest and rest[-1] == "reconnect", rest
        assert await webhook(app, payment) == "applied"
        # The browser reconnects: the new stream starts with the current card.
        async with in_process_stream(person.client, path) as (_, reader):
            assert card_state((await reader.next()).data) == "success"
        await until(lambda: hub(app).subscriber_count() == 0)


def test_stream_max_age_is_configured_from_the_environment():
    from railserve.config import ConfigError, from_env

    assert from_env({}).stream_max_age == 600
    assert from_env({"RAILSERVE_STREAM_MAX_AGE": "30"}).stream_max_age == 30
    with pytest.raises(ConfigError):
        from_env({"RAILSERVE_STREAM_MAX_AGE": "0"})
