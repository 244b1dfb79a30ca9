"""SQLite's executor: a whole step as one call on aiosqlite's thread.

The step runs inside `railserve.batch`'s group commit (BEGIN IMMEDIATE ... COMMIT, with
the units that arrived meanwhile): one round trip and, for the group, one fsync. The
step's Python runs on that thread between its statements; it must not await anything.
"""

from __future__ import annotations

import sqlite3
from typing import Any, TypeVar

from tortoise import connections

from railserve import batch, store
from railserve.store import compat

T = TypeVar("T")


def execute(
    connection: sqlite3.Connection, statement: store.Statement, client: Any
) -> tuple[Any, Any]:
    """Send one statement on the sqlite3 connection: (answer for the step, the inserted row).

    `client`: Tortoise's client, for the INSERTs it writes (looked up on the event loop:
    Tortoise's connections are context variables, unset on aiosqlite's thread)."""
    if isinstance(statement, store.Insert):
        sql, values, generated = compat.insert_statement(statement.instance, client)
        answer = _run(connection, sql, values, "key")
        return answer, (statement.instance, answer, generated)
    sql = store.text(statement.sql, "sqlite")
    if sql is None:
        return [], None
    if isinstance(statement, store.Read):
        return _run(connection, sql, statement.values, "rows"), None
    return statement.check(_run(connection, sql, statement.values, "count")), None


def _run(connection: sqlite3.Connection, sql: str, values: list, answer: str) -> Any:
    for observe in store.OBSERVERS:
        observe(sql)
    cursor = connection.execute(sql, [compat.sqlite_value(value) for value in values])
    try:
        if answer == "rows":
            return cursor.fetchall()
        if answer == "key":
            return cursor.lastrowid
        return max(cursor.rowcount, 0)  # its own rows, not its triggers'
    finally:
        cursor.close()


async def run(step: store.Step[T], *, durable: bool = True) -> T:
    saved: list = []
    client = connections.get("default")

    def work(unit: batch.Unit) -> T:
        return store.drive(
            step, lambda statement: execute(unit.connection, statement, client), saved
        )

    try:
        result = await batch.run(work, durable=durable)
    except store.Rollback as rollback:
        return rollback.result
    for instance, key, generated in saved:
        compat.mark_saved(instance, key, generated)
    return result
