"""SQLite: a whole transaction as one call on aiosqlite's thread.

On SQLite every statement sent through Tortoise is a round trip to aiosqlite's thread
(two thread switches), and a transaction holds the process's only connection from BEGIN
to COMMIT, so every other request of the worker waits for all of its round trips. The
hottest transactions (starting an attempt, settling one) are therefore also written as
plain functions of the sqlite3 connection, run by `run` from BEGIN IMMEDIATE to COMMIT in
one call: the same statements, compare-and-sets included, with one round trip.

A unit that meets anything unusual raises `Unusual`: everything it wrote is rolled back
and the caller runs the general (ORM) path instead, which handles every case.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from tortoise import connections
from tortoise.exceptions import IntegrityError, OperationalError, TransactionManagementError
from tortoise.fields.base import DatabaseDefault
from tortoise.models import Model

from railserve import db

T = TypeVar("T")

# Called with each statement a unit sends (tests/support/queries.py counts them).
OBSERVERS: list[Callable[[str], None]] = []


class Unusual(Exception):
    """Raised by a unit to roll back and leave the case to the general path."""


class Unit:
    """What a unit of work may do, on aiosqlite's thread, inside the transaction."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection
        self._inserted: list[tuple[Insert, int]] = []

    def execute(self, sql: str, values: list) -> int:
        """Run one statement; the number of rows it changed itself (not its triggers')."""
        for observe in OBSERVERS:
            observe(sql)
        cursor = self._connection.execute(sql, values)
        try:
            return max(cursor.rowcount, 0)
        finally:
            cursor.close()

    def insert(self, row: Insert) -> int:
        """Insert a prepared row; its new primary key (set on the model once committed)."""
        for observe in OBSERVERS:
            observe(row.sql)
        cursor = self._connection.execute(row.sql, row.values)
        try:
            key = cursor.lastrowid
        finally:
            cursor.close()
        self._inserted.append((row, key))
        return key

    def committed(self) -> None:
        """The rows are in the database: their models say so, as after `save()`."""
        for row, key in self._inserted:
            if row.generated_key:
                row.instance.pk = key
            row.instance._saved_in_db = True


class Insert:
    """A model instance's INSERT, built by Tortoise's own executor (same SQL, same values)."""

    def __init__(self, instance: Model) -> None:
        model = type(instance)
        meta = instance._meta
        executor = meta.db.executor_class(model=model, db=meta.db)
        self.instance = instance
        # Tortoise's own choice of statement; the new key is the row's only when the
        # database makes it (not for a key given by us, such as a webhook event's id).
        given = instance._custom_generated_pk
        self.generated_key = meta.pk.generated and not given
        columns = executor.regular_columns_all if given else executor.regular_columns
        self.sql = executor.insert_query_all if given else executor.insert_query
        self.columns = columns
        self.values = [
            meta.fields_map[name].to_db_value(getattr(instance, name), instance) for name in columns
        ]
        if any(isinstance(value, DatabaseDefault) for value in self.values):
            raise ValueError(f"{model.__name__}: a database default cannot be batched")

    def set(self, column: str, value: Any) -> None:
        """Fill in a value known only inside the transaction (a new row's id)."""
        self.values[self.columns.index(column)] = value
        setattr(self.instance, column, value)


def _transaction(connection: sqlite3.Connection, work: Callable[[Unit], T]) -> T:
    try:
        connection.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as error:  # locked beyond busy_timeout
        raise TransactionManagementError(error) from error
    unit = Unit(connection)
    try:
        result = work(unit)
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    unit.committed()
    return result


async def run(work: Callable[[Unit], T]) -> T:
    """Run `work(unit)` as one transaction in one call on aiosqlite's thread (SQLite only).

    Like `db.atomic`, in a task of its own that a cancelled caller cannot interrupt, and
    holding the connection's lock, so no statement of another task comes in between.
    """
    client = connections.get("default")

    async def unit() -> T:
        async with client._lock:
            if client._connection is None:
                await client.create_connection(with_db=True)
            connection = client._connection
            try:
                # aiosqlite's own way of running a function on its thread.
                result = await connection._execute(_transaction, connection._conn, work)
            except sqlite3.IntegrityError as error:
                raise IntegrityError(error) from error
            except sqlite3.Error as error:
                raise OperationalError(error) from error
        db.committed()
        return result

    return await asyncio.shield(asyncio.ensure_future(unit()))
