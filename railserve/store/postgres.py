"""PostgreSQL's executor: a step's statements on one asyncpg connection, one transaction.

Each statement is sent as asyncpg's prepared statement (cached per connection), so a step
costs its round trips and nothing more: no query is built and no model object is made
per request (the ORM's share of a payment was most of the worker's CPU). The transaction
runs in a task of its own, shielded from a caller that is cancelled (client gone).
"""

from __future__ import annotations

import asyncio
import re
from functools import lru_cache
from typing import Any, TypeVar

import asyncpg
from tortoise.exceptions import IntegrityError, OperationalError
from tortoise.transactions import in_transaction

from railserve import db, store
from railserve.store import compat

T = TypeVar("T")


@lru_cache(maxsize=256)
def numbered(sql: str) -> str:
    """`?` placeholders as PostgreSQL's `$1, $2, ...` (the statements carry no `?` literal)."""
    count = iter(range(1, sql.count("?") + 1))
    return re.sub(r"\?", lambda _: f"${next(count)}", sql)


async def execute(connection: Any, statement: store.Statement, client: Any) -> tuple[Any, Any]:
    """Send one statement: (answer for the step, the inserted row or None)."""
    if isinstance(statement, store.Insert):
        sql, values, generated = compat.insert_statement(statement.instance, client)
        _observe(sql)
        if generated:  # Tortoise's PostgreSQL INSERT returns the new key
            key = await connection.fetchval(sql, *values)
        else:
            await connection.execute(sql, *values)
            key = statement.instance.pk
        return key, (statement.instance, key, generated)
    sql = store.text(statement.sql, "postgres")
    if sql is None:
        return [], None
    sql = numbered(sql)
    _observe(sql)
    if isinstance(statement, store.Read):
        return [tuple(row) for row in await connection.fetch(sql, *statement.values)], None
    status = await connection.execute(sql, *statement.values)
    return statement.check(int(status.rsplit(" ", 1)[-1])), None


def _observe(sql: str) -> None:
    for observe in store.OBSERVERS:
        observe(sql)


async def send(connection: Any, statement: store.Statement, client: Any) -> tuple[Any, Any]:
    """`execute`, with asyncpg's errors as the ORM's (what callers already catch)."""
    try:
        return await execute(connection, statement, client)
    except asyncpg.IntegrityConstraintViolationError as error:
        raise IntegrityError(error) from error
    except asyncpg.PostgresError as error:
        raise OperationalError(error) from error


async def run(step: store.Step[T]) -> T:
    saved: list = []

    async def unit() -> T:
        async with in_transaction() as transaction, transaction.acquire_connection() as connection:
            return await store.drive_async(
                step, lambda statement: send(connection, statement, transaction), saved
            )

    try:
        result = await asyncio.shield(asyncio.ensure_future(unit()))
    except store.Rollback as rollback:
        return rollback.result
    for instance, key, generated in saved:
        compat.mark_saved(instance, key, generated)
    db.committed()
    return result
