"""What the app is measured against: the least a Quart + Tortoise endpoint can do.

Served by `railserve serve --app bench.reference:app`, so by the same server with the same
flags as the app. Same database, same models, no auth, no CSRF, no middleware:

- `GET /ok`: a bare "ok".
- `GET /one-read/<transaction_id>`: one indexed read (the payment joined to its
  booking's status), as JSON (`Accept: application/json`) or as a partial padded to
  `?pad=` bytes, the size of the app's partial.
- `POST /min-txn/<booking_id>`: the minimal payment transaction: insert a payment and its
  event, take a seat by a conditional update, in one transaction.
- `POST /rush-txn/<booking_id>`: the same transaction for the Tatkal rush (bench/rush.py),
  where a full train is not a failure (the app waitlists the passenger): 303 either way.
- `POST /rush-held/<booking_id>`: not a reference but an experiment (`bench/run.py --rush
  --rush-reference rush-held`): the same rows, with the train row held the way the app's
  settlement holds it, one round trip per statement — the seat update, then (train full)
  `SELECT … FOR UPDATE` and the update again, the booking's status, the waitlist count,
  the notification and the mail — before COMMIT.
"""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime

from quart import Quart, jsonify, request
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from railserve import db
from railserve.models import Booking, BookingStatus, Mail, Notification, Train
from railserve.payment.models import Actor, Payment, PaymentEvent, PaymentStatus

app = Quart(__name__)

PARTIAL = """<div id="payment-{{ p.transaction_id }}" class="payment-status state-{{ p.status }}">
<h2>{{ p.status }}</h2><p>{{ p.amount }} {{ p.currency }} by {{ p.method }}</p>
<p>Booking {{ p.booking_id }}: {{ p.booking_status }}</p><p>{{ p.failure_reason or "" }}</p>
<p class="pad">{{ pad }}</p></div>"""
PARTIAL_BYTES = 330  # what PARTIAL renders to without its padding


@app.before_serving
async def start() -> None:
    await db.init(os.environ["RAILSERVE_DATABASE_URL"])
    app.config["PARTIAL"] = app.jinja_env.from_string(PARTIAL)  # compiled once, as the app's are
    app.config["PAD"] = "x" * max(
        0, int(os.environ.get("RAILSERVE_BENCH_PARTIAL_BYTES", "0")) - 300
    )


@app.after_serving
async def stop() -> None:
    await db.close()


@app.get("/ok")
async def ok() -> str:
    return "ok"


@app.get("/one-read/<transaction_id>")
async def one_read(transaction_id: str):
    rows = await Payment.filter(transaction_id=transaction_id).values(
        "transaction_id",
        "status",
        "booking_id",
        "amount",
        "currency",
        "method",
        "failure_reason",
        booking_status="booking__status",
    )
    row = rows[0]
    if request.headers.get("HX-Request"):
        pad = "x" * max(0, request.args.get("pad", 0, type=int) - PARTIAL_BYTES)
        return await app.config["PARTIAL"].render_async(p=row, pad=pad)
    return jsonify({**row, "status": str(row["status"]), "method": str(row["method"])})


async def _succeeded_attempt(booking: Booking) -> None:
    """The payment row and its audit event, as the app's settlement writes them."""
    payment = await Payment.create(
        transaction_id="TXN" + secrets.token_hex(8).upper(),
        booking_id=booking.id,
        user_id=booking.user_id,
        method="credit_card",
        amount=booking.amount,
        currency="INR",
        instrument="•••• 4242",
        idempotency_key=secrets.token_urlsafe(16),
        status=PaymentStatus.SUCCESS,
    )
    await PaymentEvent.create(
        payment_id=payment.id,
        from_status=PaymentStatus.PENDING,
        to_status=PaymentStatus.SUCCESS,
        event="succeed",
        actor=Actor.GATEWAY,
    )


async def minimal_transaction(booking_id: int) -> bool:
    """Insert a payment and its event, take a seat by a conditional update: one
    transaction. True when the seat was taken."""
    booking = await Booking.get(id=booking_id).only("id", "user_id", "train_id", "amount")
    async with in_transaction():
        await _succeeded_attempt(booking)
        taken = await Train.filter(id=booking.train_id, seats_left__gte=1).update(
            seats_left=F("seats_left") - 1
        )
    return bool(taken)


@app.post("/min-txn/<int:booking_id>")
async def min_txn(booking_id: int):
    return ("", 303 if await minimal_transaction(booking_id) else 409)


@app.post("/rush-txn/<int:booking_id>")
async def rush_txn(booking_id: int):
    await minimal_transaction(booking_id)
    return ("", 303)


@app.post("/rush-held/<int:booking_id>")
async def rush_held(booking_id: int):
    booking = await Booking.get(id=booking_id).only("id", "user_id", "train_id", "amount")
    async with in_transaction():
        await _succeeded_attempt(booking)
        seats = Train.filter(id=booking.train_id, seats_left__gte=1)
        taken = await seats.update(seats_left=F("seats_left") - 1)
        if not taken:
            await Train.filter(id=booking.train_id).select_for_update().get()
            taken = await seats.update(seats_left=F("seats_left") - 1)
        now = datetime.now(UTC)
        status = BookingStatus.CONFIRMED if taken else BookingStatus.WAITLISTED
        await Booking.filter(id=booking.id).update(status=status, paid_at=now)
        position = (
            1
            + await Booking.filter(
                train_id=booking.train_id, status=BookingStatus.WAITLISTED, paid_at__lt=now
            ).count()
        )
        await Notification.create(
            user_id=booking.user_id, booking_id=booking.id, kind="rush", message=f"{position}"
        )
        await Mail.create(
            user_id=booking.user_id,
            booking_id=booking.id,
            to_address="rush@example.com",
            subject=f"position {position}",
            body="",
        )
    return ("", 303)
