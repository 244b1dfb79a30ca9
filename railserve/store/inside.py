"""A step inside an ORM transaction the caller already holds (`db.atomic`).

For the steps that are one part of a larger unit whose row locks are still taken with
the ORM (refund opening; the parts of a plan cancelled with its booking): the same
definition, sent on the transaction's own connection, one statement per round trip.
Nothing is committed here; the caller's transaction does that.
"""

from __future__ import annotations

from typing import Any, TypeVar

from tortoise import connections

from railserve import batch, store
from railserve.store import compat, postgres, sqlite

T = TypeVar("T")


async def run(step: store.Step[T]) -> T:
    client = connections.get("default")  # the transaction's, inside `in_transaction`
    saved: list = []
    async with client.acquire_connection() as connection:
        send = postgres.send if client.capabilities.dialect == "postgres" else _on_sqlite
        result = await store.drive_async(
            step, lambda statement: send(connection, statement, client), saved
        )
    # Marked saved now (not at the caller's commit): as `save()` inside a transaction does.
    for instance, key, generated in saved:
        compat.mark_saved(instance, key, generated)
    return result


async def _on_sqlite(connection: Any, statement: store.Statement, client: Any) -> tuple[Any, Any]:
    try:
        return await compat.on_sqlite_thread(connection, sqlite.execute, statement, client)
    except compat.SQLITE_ERRORS as error:
        raise batch.translated(error) from error
