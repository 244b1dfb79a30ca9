"""The assumptions of railserve/store/compat.py, each checked against the installed
Tortoise-ORM and aiosqlite: one of these failing after an upgrade names the entry of
compat.py to rework, before any payment silently misbehaves."""

from __future__ import annotations

import threading

import asyncpg
import pytest
from tortoise import connections
from tortoise.transactions import in_transaction

from railserve import db
from railserve.models import Notification, Train
from railserve.payment.models import WebhookEvent
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
