"""The assumptions of railserve/store/compat.py, each checked against the installed
Tortoise-ORM and aiosqlite: one of these failing after an upgrade names the entry of
compat.py to rework, before any payment silently misbehaves."""

from __future__ import annotations

import threading

import asyncpg
import pytest
from tortoise import connections
from tortoise.expressions import Subquery
from tortoise.transactions import in_transaction

from railserve import db
from railserve.models import Booking, Notification, Train, User
from railserve.payment.models import Payment, WebhookEvent
from railserve.store import compat
from tests.support.passenger import make_train

pytestmark = pytest.mark.usefixtures("app")


def sqlite_only() -> None:
    if not db.sqlite_in_use():
        pytest.skip("an assumption about SQLite's client")


async def test_aiosqlite_runs_a_function_on_its_thread_with_the_sqlite3_connection():
    sqlite_only()
    client = connections.get("default")
    connection = await compat.sqlite_client_connection(client)

    def probe(raw, word):
        return threading.get_ident(), raw.execute("SELECT ?", [word]).fetchone()[0]

    thread, echoed = await compat.on_sqlite_thread(connection, probe, "hello")
    assert (thread != threading.get_ident(), echoed) == (True, "hello")


async def test_tortoise_sqlite_client_has_one_lock_for_its_one_connection():
    sqlite_only()
    client = connections.get("default")
    lock = compat.sqlite_client_lock(client)
    assert hasattr(lock, "acquire") and hasattr(lock, "release")
    assert await compat.sqlite_client_connection(client) is client._connection


async def test_sqlite_datetimes_are_stored_as_tortoise_stores_them():
    sqlite_only()
    train = await make_train()
    connection = await compat.sqlite_client_connection(connections.get("default"))
    (stored,) = await compat.on_sqlite_thread(
        connection,
        lambda raw: raw.execute("SELECT departs_at FROM trains WHERE id=?", [train.id]).fetchone(),
    )
    assert stored == compat.sqlite_value(train.departs_at)


async def test_inserts_are_tortoise_s_own_with_a_generated_or_given_key():
    client = connections.get("default")
    sql, values, generated = compat.insert_statement(
        Notification(user_id=1, booking_id=None, kind="k", message="m"), client
    )
    assert sql.upper().startswith("INSERT") and '"notifications"' in sql
    assert generated and "m" in values
    event = WebhookEvent(id="evt_compat", type="payment.succeeded", transaction_id="TXN")
    sql, values, generated = compat.insert_statement(event, client)
    assert not generated and values[0] == "evt_compat"


async def test_a_row_marked_saved_is_what_save_leaves():
    train = await make_train()
    copy = Train(**{name: getattr(train, name) for name in ("number", "name", "fare")})
    compat.mark_saved(copy, train.id, generated=True)
    saved = await Train.get(id=train.id)
    assert (copy.pk, copy._saved_in_db) == (saved.pk, saved._saved_in_db)


async def test_a_postgres_transaction_hands_out_its_asyncpg_connection():
    if db.sqlite_in_use():
        pytest.skip("an assumption about PostgreSQL's client")
    async with in_transaction() as transaction, transaction.acquire_connection() as raw:
        assert isinstance(raw, asyncpg.Connection) and raw.is_in_transaction()


def test_the_sqlite_client_fixes_are_in_place():
    for owner, name, replacement in compat.PATCHES:
        assert getattr(owner, name) is replacement, f"{owner.__name__}.{name} not patched"


async def test_a_sqlite_transaction_takes_the_write_lock_at_begin():
    sqlite_only()
    statements: list[str] = []
    connection = await compat.sqlite_client_connection(connections.get("default"))
    await compat.on_sqlite_thread(connection, lambda raw: raw.set_trace_callback(statements.append))
    try:
        async with in_transaction() as transaction:
            await transaction.execute_query("SELECT 1")
    finally:
        await compat.on_sqlite_thread(connection, lambda raw: raw.set_trace_callback(None))
    assert "BEGIN IMMEDIATE" in statements


async def test_a_compare_and_set_counts_its_own_row_not_its_trigger_s():
    train = await make_train()
    user = await User.create(name="C", email="c@example.com", password_hash="x")
    booking = await Booking.create(
        pnr="C000000001", user=user, train=train, passengers=["C"], passenger_count=1, amount=1
    )
    # The live trigger (migration 0003) writes a row of its own for this update.
    assert (
        await Booking.filter(id=booking.id, status="pending_payment").update(status="expired") == 1
    )


async def test_tortoise_s_postgres_inserts_have_the_shape_the_one_statement_plan_cuts():
    if db.sqlite_in_use():
        pytest.skip("an assumption about PostgreSQL's client")
    from railserve.payment.models import Payment, PaymentEvent
    from railserve.store import planner

    client = connections.get("default")
    rows = [
        Notification(user_id=1, kind="k", message="m"),
        PaymentEvent(payment_id=1, to_status="pending", event="start", actor="user"),
        WebhookEvent(id="evt_shape", type="payment.succeeded", transaction_id="TXN"),
        Payment(
            transaction_id="TXN1",
            booking_id=1,
            user_id=1,
            method="upi",
            amount=1,
            instrument="x",
            idempotency_key="k",
        ),
    ]
    for row in rows:
        sql, _, _ = compat.insert_statement(row, client)
        assert planner._INSERT.match(sql), sql


async def _paid_attempt() -> Payment:
    train = await make_train()
    user = await User.create(name="R", email="r@example.com", password_hash="x")
    booking = await Booking.create(
        pnr="R000000001", user=user, train=train, passengers=["R"], passenger_count=1, amount=7
    )
    return await Payment.create(
        transaction_id="TXNREADSHAPE00001",
        booking_id=booking.id,
        user_id=user.id,
        method="upi",
        amount=7,
        instrument="r@upi",
        idempotency_key="read-shape",
    )


async def test_a_read_made_once_gives_what_awaiting_its_query_gives():
    """PreparedRead's three entries: Tortoise's SQL for the query, its joined models and
    annotations, and the instances its executor makes of the rows."""
    payment = await _paid_attempt()

    await WebhookEvent.create(id="evt_read", type="payment.succeeded", transaction_id="TXN")

    def query(event_id: str, transaction_id: str):
        seen = WebhookEvent.filter(id=event_id).values("id")
        return (
            Payment.filter(transaction_id=transaction_id)
            .annotate(seen=Subquery(seen))
            .select_related("booking__train")
        )

    client = compat.read_client(Payment)
    assert client is connections.get("default")
    built = query("evt_read", payment.transaction_id)
    sql, params = compat.made_sql(built, client)
    assert list(params) == ["evt_read", payment.transaction_id] and "JOIN" in sql.upper()
    shape = compat.model_read_shape(built)
    assert shape is not None and shape.annotations == ["seen"]
    (read,) = await compat.models_read(Payment, client, sql, list(params), shape)
    (awaited,) = await query("evt_read", payment.transaction_id)
    assert (read.id, read.seen, read.booking.pnr) == (payment.id, "evt_read", "R000000001")
    assert read.booking.train.seats_left == 100 and compat.is_saved(read)
    # The very instances Tortoise's executor makes, field for field, joined ones included.
    for made, tortoise_made in (
        (read, awaited),
        (read.booking, awaited.booking),
        (read.booking.train, awaited.booking.train),
    ):
        assert vars(made) == vars(tortoise_made)
    assert compat.model_read_shape(Payment.filter(id=payment.id).first()) is None


async def test_a_model_made_from_a_row_converts_its_columns():
    payment = await _paid_attempt()
    (row,) = await Payment.filter(id=payment.id).values("id", "status", "method", "created_at")
    made = compat.model_from_row(Payment, row)
    assert (made.id, made.status, made.method) == (payment.id, "pending", "upi")
    assert made.created_at == payment.created_at and made.created_at.tzinfo is not None
    assert not compat.is_saved(Payment(transaction_id="TXNX")) and compat.is_saved(made)
