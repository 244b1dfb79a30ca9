"""SQLite: a whole transaction as one call on aiosqlite's thread.

On SQLite every statement sent through Tortoise is a round trip to aiosqlite's thread
(two thread switches), and a transaction holds the process's only connection from BEGIN
to COMMIT, so every other request of the worker waits for all of its round trips. The
hottest transactions (starting an attempt, settling one) are therefore also written as
plain functions of the sqlite3 connection, run by `run` from BEGIN IMMEDIATE to COMMIT in
one call: the same statements, compare-and-sets included, with one round trip. Units that
wait for the connection at the same time share that call and its COMMIT, each in a
savepoint of its own (group commit: one fsync for the group). The money steps reach it
through `railserve.store.sqlite`; a unit that raises is rolled back alone.

A unit may be written as `durable=False`: a group made only of such units commits without
waiting for the disk (`synchronous=NORMAL` for that COMMIT). WAL frames are written in
order and every later durable COMMIT syncs the log up to itself, so such a unit is lost on
power failure only together with everything committed after it: the simulated gateway's
own record of a charge, which the settlement that follows it makes durable.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from tortoise import connections
from tortoise.exceptions import IntegrityError, OperationalError, TransactionManagementError
from tortoise.models import Model

from railserve import db, store
from railserve.store import compat

T = TypeVar("T")


class Unit:
    """What a unit of work may do, on aiosqlite's thread, inside the transaction."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection
        self._inserted: list[tuple[Insert, int]] = []

    def insert(self, row: Insert) -> int:
        """Insert a prepared row; its new primary key (set on the model once committed)."""
        for observe in store.OBSERVERS:
            observe(row.sql)
        cursor = self.connection.execute(row.sql, row.values)
        try:
            key = cursor.lastrowid
        finally:
            cursor.close()
        self._inserted.append((row, key))
        return key

    def committed(self) -> None:
        """The rows are in the database: their models say so, as after `save()`."""
        for row, key in self._inserted:
            compat.mark_saved(row.instance, key, row.generated_key)


class Insert:
    """A model instance's INSERT, built by Tortoise's own executor (same SQL, same values)."""

    def __init__(self, instance: Model) -> None:
        self.instance = instance
        self.sql, values, self.generated_key = compat.insert_statement(
            instance, connections.get("default")
        )
        self.values = [compat.sqlite_value(value) for value in values]


class _Queue:
    """Units waiting for the connection, and the task that commits them."""

    def __init__(self) -> None:
        self.waiting: list[tuple[Callable[[Unit], Any], asyncio.Future, bool]] = []
        self.flusher: asyncio.Task | None = None


def _group(
    connection: sqlite3.Connection, works: list[Callable[[Unit], Any]], durable: bool
) -> list:
    """On aiosqlite's thread: each unit in a savepoint of one transaction, one COMMIT
    (which waits for the disk only if `durable`).

    A unit that raises is rolled back to its savepoint alone; the others commit. If the
    transaction itself is lost (disk full, I/O error), every unit of the group fails.
    """
    if durable:
        return _transaction(connection, works)
    (level,) = connection.execute("PRAGMA synchronous").fetchone()
    connection.execute("PRAGMA synchronous=NORMAL")
    try:
        return _transaction(connection, works)
    finally:
        connection.execute(f"PRAGMA synchronous={int(level)}")


def _transaction(connection: sqlite3.Connection, works: list[Callable[[Unit], Any]]) -> list:
    try:
        connection.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as error:  # locked beyond busy_timeout
        raise TransactionManagementError(error) from error
    # A unit alone (the usual case below 8 connections): the transaction is its savepoint.
    alone = len(works) == 1
    outcomes: list[tuple[bool, Any]] = []
    done: list[Unit] = []
    try:
        for work in works:
            unit = Unit(connection)
            if not alone:
                connection.execute("SAVEPOINT unit")
            try:
                value = work(unit)
            except Exception as error:
                if not connection.in_transaction:
                    raise
                connection.execute("ROLLBACK" if alone else "ROLLBACK TO unit")
                if not alone:
                    connection.execute("RELEASE unit")
                outcomes.append((False, error))
                continue
            if not alone:
                connection.execute("RELEASE unit")
            outcomes.append((True, value))
            done.append(unit)
        if connection.in_transaction:  # not when a unit alone was rolled back
            connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    for unit in done:
        unit.committed()
    return outcomes


def translated(error: BaseException) -> BaseException:
    if isinstance(error, sqlite3.IntegrityError):
        return IntegrityError(error)
    if isinstance(error, sqlite3.Error):
        return OperationalError(error)
    return error


async def _flush(client: Any, queue: _Queue) -> None:
    while queue.waiting:
        async with compat.sqlite_client_lock(client):
            group, queue.waiting = queue.waiting, []
            durable = any(needs_sync for _, _, needs_sync in group)
            connection = await compat.sqlite_client_connection(client)
            try:
                outcomes = await compat.on_sqlite_thread(
                    connection, _group, [work for work, _, _ in group], durable
                )
            except Exception as error:  # BEGIN or COMMIT failed: nothing of the group holds
                for _, future, _ in group:
                    if not future.done():
                        future.set_exception(translated(error))
                continue
        db.committed()
        for (_, future, _), (ok, value) in zip(group, outcomes, strict=True):
            if future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(translated(value))


async def run(work: Callable[[Unit], T], *, durable: bool = True) -> T:
    """Run `work(unit)` atomically on aiosqlite's thread, committed before this returns.

    Units that arrive while the connection is busy wait together and are committed as one
    group: each in a savepoint of one transaction, so each is still all or nothing, and
    the group costs one COMMIT (one fsync) instead of one each. The group runs in a task
    of its own, which a cancelled caller (client gone) does not interrupt, holding the
    connection's lock, so no statement of another task comes in between. `durable=False`:
    see the module's docstring.
    """
    client = connections.get("default")
    queue = client.__dict__.setdefault("_railserve_units", _Queue())
    future = asyncio.get_running_loop().create_future()
    queue.waiting.append((work, future, durable))
    if queue.flusher is None or queue.flusher.done():
        queue.flusher = asyncio.ensure_future(_flush(client, queue))
    return await asyncio.shield(future)
