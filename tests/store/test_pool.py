"""PostgreSQL's pool (db.PooledConnection): a connection goes back to it without asyncpg's
reset query — one round trip fewer per statement of ours — and still without an open
transaction."""

from __future__ import annotations

import pytest
from tortoise import connections

from railserve import db
from railserve.models import Train
from tests.support.passenger import make_train

pytestmark = pytest.mark.usefixtures("app")


def postgres_only() -> None:
    if db.sqlite_in_use():
        pytest.skip("SQLite has one connection and no pool")


async def test_a_released_connection_sends_no_reset_query(monkeypatch):
    postgres_only()
    sent: list[str] = []
    original = db.PooledConnection.execute

    async def execute(self, query: str, *args, **kwargs):
        sent.append(query)
        return await original(self, query, *args, **kwargs)

    async with connections.get("default").acquire_connection() as connection:
        assert isinstance(connection._con, db.PooledConnection)  # asyncpg's pool proxy
        await connection.fetchval("SELECT 1")
        monkeypatch.setattr(db.PooledConnection, "execute", execute)
    assert sent == []


async def test_a_transaction_left_open_is_rolled_back_on_release():
    postgres_only()
    train = await make_train(seats=10)
    client = connections.get("default")
    async with client.acquire_connection() as connection:
        await connection.execute("BEGIN")
        await connection.execute('UPDATE "trains" SET "seats_left"=0 WHERE "id"=$1', train.id)
        raw = connection._con
    assert not raw.is_in_transaction()
    assert (await Train.get(id=train.id)).seats_left == 10
