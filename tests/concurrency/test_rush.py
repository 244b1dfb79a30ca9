"""The Tatkal rush at a small size: 200 passengers, 20 seats, everyone paying at once.

The invariants of `bench/run.py --rush` (bench/rush.py), as a test: a real server
(`railserve serve`, 4 workers on PostgreSQL; 1 worker on SQLite, where the workers of one
host share one database file), one train, 200 passengers each holding a one-passenger
booking (written straight into the database: signing 200 people up over HTTP would hash
200 passwords at full cost), all paying with the success card at the same moment over 64
connections. Then: no error, exactly 20 confirmed and 180 waitlisted, no seat oversold,
the waitlist in the order the payments succeeded, and `railserve check` clean.

Only public interfaces: HTTP, the `railserve` command and the database's rows, so that it
holds whichever code settles the payments. It waits on conditions (every attempt final,
bounded generously), never on time, and asserts no latency.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx
import pytest

from railserve import db
from railserve.invariants import violations
from railserve.models import Booking, BookingStatus, Notification, Train, User
from railserve.payment.models import Payment, PaymentStatus
from tests.support.database import DatabaseFactory, using_postgres
from tests.support.passenger import make_train
from tests.support.server import LiveServer, railserve

pytestmark = pytest.mark.server

PAYERS = 200
SEATS = 20
CONNECTIONS = 64
WORKERS = 4 if using_postgres() else 1
FARE = 125000
SETTLE_BOUND = 300.0  # seconds: a bound for a machine that is very busy, not an expectation
SUCCESS_CARD = {
    "method": "credit_card",
    "card_number": "4242 4242 4242 4242",
    "card_expiry": "12/39",
    "card_cvv": "123",
    "card_name": "Tatkal Passenger",
}


@dataclass
class Rush:
    """What the rush left: the answers, and the rows read back once every attempt was final."""

    answers: Counter
    train: dict
    bookings: list[dict]
    payments: list[dict]
    told: dict[int, int]  # booking id -> waitlist position its notification named
    violations: list[str]
    check: tuple[int, str]


def sign_in(server: LiveServer, user_ids: list[int]) -> dict[int, tuple[str, str]]:
    """(Cookie header, CSRF token) per user, signed with the server's secret as the app
    signs them after a sign-in: quart-auth's token and the session holding the CSRF token."""
    from quart_auth import QuartAuth

    from railserve import create_app
    from railserve.config import Settings

    app = create_app(
        Settings(
            database_url="sqlite://:memory:",
            secret_key=server.env["RAILSERVE_SECRET_KEY"],
            webhook_secret=server.env["RAILSERVE_WEBHOOK_SECRET"],
        )
    )
    auth = next(e for e in app.extensions["QUART_AUTH"] if isinstance(e, QuartAuth))
    session = app.session_interface.get_signing_serializer(app)
    auth_name, session_name = (
        app.config["QUART_AUTH_COOKIE_NAME"],
        app.config["SESSION_COOKIE_NAME"],
    )
    out = {}
    for user_id in user_ids:
        token = secrets.token_urlsafe(32)
        cookie = (
            f"{auth_name}={auth.dump_token(str(user_id), app)}; "
            f"{session_name}={session.dumps({'csrf_token': token})}"
        )
        out[user_id] = (cookie, token)
    return out


async def seed() -> tuple[int, list[tuple[int, int]]]:
    """The train and the passengers' bookings: (train id, [(booking id, user id)])."""
    train = await make_train(seats=SEATS, fare=FARE, name="Tatkal Express")
    tag = secrets.token_hex(4)
    await User.bulk_create(
        [
            User(name=f"Rush {i}", email=f"rush-{tag}-{i}@example.com", password_hash="unused")
            for i in range(PAYERS)
        ]
    )
    users = (
        await User.filter(email__startswith=f"rush-{tag}-")
        .order_by("id")
        .values_list("id", flat=True)
    )
    await Booking.bulk_create(
        [
            Booking(
                pnr=f"R{tag[:4].upper()}{i:05d}",
                user_id=user_id,
                train_id=train.id,
                passengers=[f"Tatkal Passenger {i}"],
                passenger_count=1,
                amount=FARE,
                status=BookingStatus.PENDING_PAYMENT,
            )
            for i, user_id in enumerate(users)
        ]
    )
    rows = await Booking.filter(train_id=train.id).order_by("id").values_list("id", "user_id")
    return train.id, [tuple(row) for row in rows]


async def pay_all_at_once(
    server: LiveServer, pool: list[tuple[int, int]], cookies: dict[int, tuple[str, str]]
) -> Counter:
    """Every passenger posts the pay form at the same moment; the answers, by status code
    (or by the exception, should a connection fail)."""
    amount = f"{FARE // 100}.{FARE % 100:02d}"
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    gate = asyncio.Event()
    async with httpx.AsyncClient(
        base_url=server.url, limits=limits, timeout=SETTLE_BOUND
    ) as client:

        async def pay(booking_id: int, user_id: int) -> int | str:
            cookie, token = cookies[user_id]
            form = {
                "csrf_token": token,
                "idempotency_key": secrets.token_urlsafe(24),
                "amount": amount,
                **SUCCESS_CARD,
            }
            await gate.wait()
            try:
                reply = await client.post(
                    f"/payment/process/{booking_id}",
                    content=urlencode(form),
                    headers={
                        "Cookie": cookie,
                        "Content-Type": "application/x-www-form-urlencoded",
                    },
                )
            except httpx.HTTPError as error:
                return type(error).__name__
            return reply.status_code

        tasks = [asyncio.create_task(pay(b, u)) for b, u in pool]
        await asyncio.sleep(0)
        gate.set()
        return Counter(await asyncio.gather(*tasks))


async def all_final(train_id: int) -> None:
    """Wait until every passenger's attempt exists and none is pending (bounded)."""
    deadline = time.monotonic() + SETTLE_BOUND
    while True:
        attempts = Payment.filter(booking__train_id=train_id)
        total = await attempts.count()
        pending = await attempts.filter(status=PaymentStatus.PENDING).count()
        if total >= PAYERS and pending == 0:
            return
        assert time.monotonic() < deadline, (
            f"after {SETTLE_BOUND:.0f} s: {total} attempts, {pending} still pending"
        )
        await asyncio.sleep(0.2)


async def observe(server: LiveServer, cookies_for_server) -> Rush:
    await db.init(server.env["RAILSERVE_DATABASE_URL"])
    try:
        train_id, pool = await seed()
        cookies = cookies_for_server([user for _, user in pool])
        answers = await pay_all_at_once(server, pool, cookies)
        if set(answers) == {303}:
            await all_final(train_id)
        (train,) = await Train.filter(id=train_id).values("total_seats", "seats_left")
        bookings = await Booking.filter(train_id=train_id).values(
            "id", "status", "paid_at", "passenger_count"
        )
        payments = await Payment.filter(booking__train_id=train_id).values(
            "id", "booking_id", "status", "completed_at"
        )
        told = {
            n["booking_id"]: int(m.group(1))
            for n in await Notification.filter(booking__train_id=train_id, kind="waitlist").values(
                "booking_id", "message"
            )
            if (m := re.search(r"position (\d+)", n["message"]))
        }
        found = await violations()
    finally:
        await db.close()
    done = await asyncio.to_thread(railserve, "check", env=server.env)
    return Rush(answers, train, bookings, payments, told, found, (done.returncode, done.stdout))


@pytest.fixture(scope="module")
def rush(database_factory: DatabaseFactory) -> Iterator[Rush]:
    """The rush, run once for the module's assertions."""
    server = LiveServer(
        database_factory.new_url(), workers=WORKERS, gateway_delay="0", sweep_interval="0"
    )
    server.start(timeout=120)
    try:
        yield asyncio.run(observe(server, lambda users: sign_in(server, users)))
    finally:
        server.stop()


def test_every_payer_is_answered_without_error(rush: Rush):
    assert rush.answers == Counter({303: PAYERS})


def test_exactly_the_seats_are_confirmed_and_none_oversold(rush: Rush):
    by_status = Counter(b["status"] for b in rush.bookings)
    assert by_status == {BookingStatus.CONFIRMED: SEATS, BookingStatus.WAITLISTED: PAYERS - SEATS}
    confirmed = sum(
        b["passenger_count"] for b in rush.bookings if b["status"] == BookingStatus.CONFIRMED
    )
    assert rush.train["seats_left"] >= 0
    assert confirmed == rush.train["total_seats"] - rush.train["seats_left"] == SEATS
    # One attempt per passenger, every one a success: nothing charged twice, nothing lost.
    assert Counter(p["status"] for p in rush.payments) == {PaymentStatus.SUCCESS: PAYERS}
    assert len({p["booking_id"] for p in rush.payments}) == PAYERS


def test_the_waitlist_follows_the_order_the_payments_succeeded(rush: Rush):
    """Seats go first: every confirmed booking was paid before any waitlisted one, and
    each waitlisted passenger was told the position the waitlist gives them (its order is
    the payment time, `paid_at`, stamped under the train row's lock)."""
    confirmed = [b for b in rush.bookings if b["status"] == BookingStatus.CONFIRMED]
    waiting = sorted(
        (b for b in rush.bookings if b["status"] == BookingStatus.WAITLISTED),
        key=lambda b: (b["paid_at"], b["id"]),
    )
    assert all(b["paid_at"] is not None for b in rush.bookings)
    assert max(b["paid_at"] for b in confirmed) < min(b["paid_at"] for b in waiting)
    assert [rush.told.get(b["id"]) for b in waiting] == list(range(1, PAYERS - SEATS + 1))


@pytest.mark.xfail(
    strict=False,
    reason="the settlement stamps the payment's completed_at when the gateway's answer "
    "arrives, before it waits for the train row's lock, and the booking's paid_at (the "
    "waitlist order) once it holds it: with several workers the two orders differ "
    "(bench/README.md, 'The Tatkal rush'). Passes once both are stamped under the lock; "
    "on SQLite's single worker the two orders usually agree already.",
)
def test_waitlist_order_equals_the_payments_completed_order(rush: Rush):
    waiting = {b["id"]: b for b in rush.bookings if b["status"] == BookingStatus.WAITLISTED}
    by_paid = sorted(waiting, key=lambda i: (waiting[i]["paid_at"], i))
    success = sorted(
        (p for p in rush.payments if p["booking_id"] in waiting),
        key=lambda p: (p["completed_at"], p["id"]),
    )
    assert by_paid == [p["booking_id"] for p in success]


def test_railserve_check_is_clean_afterwards(rush: Rush):
    assert rush.violations == []
    code, out = rush.check
    assert code == 0, out
