"""Every private name of Tortoise-ORM and aiosqlite that RailServe relies on, in one place.

Each entry says why it is needed; tests/store/test_compat.py checks each assumption and
fails loudly (naming the entry) the day an upgrade breaks it. Pinned: tortoise-orm 1.1.x,
aiosqlite 0.22.x. Nothing outside this module touches these names directly.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from tortoise.backends.sqlite import client as sqlite_client
from tortoise.fields.base import DatabaseDefault
from tortoise.models import Model
from tortoise.router import router

T = TypeVar("T")
M = TypeVar("M", bound=Model)


# aiosqlite runs every call on a thread that owns the sqlite3 connection. `_execute(fn,
# *args)` queues a plain function on that thread and awaits its result, and `_conn` is the
# sqlite3 connection itself: the only way to run a whole transaction (a step, a group of
# units) in one hop instead of one round trip per statement. No public equivalent.
async def on_sqlite_thread(connection: Any, function: Callable[..., T], *args: Any) -> T:
    """Run `function(sqlite3_connection, *args)` on aiosqlite's thread."""
    return await connection._execute(function, connection._conn, *args)


# Tortoise's SQLite client: `_lock` is the lock every query of the process takes for the
# one connection (a group of units holds it so no other statement comes in between);
# `_connection` is the aiosqlite connection, None until the first query opens it.
def sqlite_client_lock(client: Any) -> Any:
    return client._lock


async def sqlite_client_connection(client: Any) -> Any:
    if client._connection is None:
        await client.create_connection(with_db=True)
    return client._connection


# Tortoise builds each model's INSERT once per connection (its executor's `insert_query`
# and `regular_columns`, or the `_all` pair when the key is given by us, which
# `_custom_generated_pk` records); an Insert statement sends that very SQL with the values
# Tortoise would send, converted by each field's `to_db_value`.
_INSERTS: dict[tuple[type[Model], bool, str], tuple[str, list[str], list]] = {}


def insert_statement(instance: Model, client: Any) -> tuple[str, list, bool]:
    """(SQL, values, whether the database makes the key) of `instance`'s INSERT."""
    sql, columns, fields = _insert_shape(instance, client)
    values = [
        field.to_db_value(getattr(instance, name), instance)
        for name, field in zip(columns, fields, strict=True)
    ]
    if any(isinstance(value, DatabaseDefault) for value in values):
        raise ValueError(f"{type(instance).__name__}: a database default cannot be sent as a value")
    return sql, values, instance._meta.pk.generated and not instance._custom_generated_pk


def insert_columns(instance: Model, client: Any) -> list[str]:
    """The columns of `instance`'s INSERT, in the order of its values."""
    return _insert_shape(instance, client)[1]


def _insert_shape(instance: Model, client: Any) -> tuple[str, list[str], list]:
    """(SQL, columns, fields) of the INSERT Tortoise writes for `instance`'s model."""
    model = type(instance)
    given = bool(instance._custom_generated_pk)
    dialect = client.capabilities.dialect
    statement = _INSERTS.get((model, given, dialect))
    if statement is None:
        executor = client.executor_class(model=model, db=client)
        columns = executor.regular_columns_all if given else executor.regular_columns
        sql = executor.insert_query_all if given else executor.insert_query
        statement = (sql, columns, [instance._meta.fields_map[name] for name in columns])
        _INSERTS[(model, given, dialect)] = statement
    return statement


def mark_saved(instance: Model, key: Any, generated: bool) -> None:
    """The row is committed: the instance says so, as after `save()` (`_saved_in_db`)."""
    if generated:
        instance.pk = key
    instance._saved_in_db = True


def is_saved(instance: Model) -> bool:
    """Whether the instance's row is in the database (`_saved_in_db`, as `save()` sets it)."""
    return instance._saved_in_db


# A model instance made from a row's columns, converted by its fields, as Tortoise's
# executor makes every instance it reads (`_init_from_db`; a partial one when only some
# columns are given).
def model_from_row(model: type[M], columns: dict[str, Any]) -> M:
    return model._init_from_db(**columns)


# --- Reads whose SQL is built once (railserve/prepared.py) -------------------------------
# Awaiting a query makes its SQL on the connection it was given (`_db`, `_make_query`),
# then runs it: a model query through the connection's executor, with its joined models
# (`_select_related_idx`) and annotations (`_annotations`). A query with prefetches or
# asking for one object (`_prefetch_map`, `_prefetch_queries`, `_single`) is more than
# that, and not kept.


def read_client(model: type[Model]) -> Any:
    """The connection a read of `model` goes to (a transaction's, inside one)."""
    return router.db_for_read(model) or model._meta.db


def made_sql(query: Any, client: Any) -> tuple[str, list]:
    """(SQL, parameters) of `query` as awaiting it on `client` would send them."""
    query._db = client
    query._make_query()  # what awaiting the query does first
    return query.query.get_parameterized_sql()


class ReadShape:
    """How the rows of one model query become instances: its joined models (Tortoise's
    `_select_related_idx`: model, column count, path), its annotations, and once a row is
    seen, where each model's columns sit in the row (`layout`)."""

    def __init__(self, joined: list, annotations: list[str]) -> None:
        self.joined = joined
        self.annotations = annotations
        self.layout: list[tuple] | None = None

    def lay_out(self, columns: list[str]) -> list[tuple]:
        """(model, its field names, first and last column, its parent's path, its path) for
        each model of the row, the queried one first; joined columns are `path.field`."""
        model, count, *_, path = self.joined[0]
        layout = [(model, columns[:count], 0, count, None, tuple(path))]
        for model, count, *_, full_path in self.joined[1:]:
            first = layout[-1][3]
            names = [name.split(".", 1)[1] for name in columns[first : first + count]]
            layout.append((model, names, first, first + count, tuple(full_path[:-1]), full_path))
        self.layout = layout
        return layout


def model_read_shape(query: Any) -> ReadShape | None:
    """The shape of a model query whose SQL `made_sql` made, or None if awaiting it does
    more than one SELECT answered with a list."""
    if query._prefetch_map or query._prefetch_queries or query._single:
        return None
    return ReadShape(query._select_related_idx, list(query._annotations))


async def models_read(
    model: type[M], client: Any, sql: str, values: list, shape: ReadShape
) -> list[M]:
    """The instances awaiting the query would give: its SQL run with `values`, each row
    made into `model` with its joined models and annotations, as Tortoise's executor
    makes them (`execute_select`), the columns' places worked out once per query."""
    _, rows = await client.execute_query(sql, values)
    if not rows:
        return []
    layout = shape.layout or shape.lay_out(list(rows[0].keys()))
    found = []
    for row in rows:
        cells = tuple(row)
        made: dict[tuple, Any] = {}
        for joined, names, first, last, parent, path in layout:
            chunk = cells[first:last]
            if parent is None:
                instance = made[path] = joined._init_from_db(**dict(zip(names, chunk, strict=True)))
                continue
            if any(cell for cell in chunk):
                related = joined._init_from_db(**dict(zip(names, chunk, strict=True)))
            else:
                related = None if chunk else joined._init_from_db()
            owner = made.get(parent)
            if owner is not None:
                object.__setattr__(owner, f"_{path[-1]}", related)
            if related is not None:
                made[path] = related
        for name in shape.annotations:
            object.__setattr__(instance, name, row[name])
        found.append(instance)
    return found


# sqlite3's default datetime adapter is deprecated (Python 3.12). Tortoise stores an aware
# UTC datetime on SQLite as `isoformat(" ")` text (what that adapter wrote); the sweep and
# the live triggers compare that text, so values sent by hand take the same shape.
def sqlite_value(value: Any) -> Any:
    return value.isoformat(" ") if isinstance(value, datetime) else value


SQLITE_ERRORS = (sqlite3.Error,)


# --- SQLite: three fixes to Tortoise's client ------------------------------------------
# 1. BEGIN IMMEDIATE takes the write lock up front, so busy_timeout applies and a
#    read-then-write transaction can never fail with SQLITE_BUSY_SNAPSHOT across workers.
# 2. If BEGIN fails, Tortoise keeps the connection lock forever and every later query of
#    the process hangs; release it.


async def _begin_immediate(self: Any) -> None:
    try:
        # The connection is in autocommit mode: a COMMIT is needed only if something left
        # a transaction open, and each call is a round trip to aiosqlite's thread.
        if self._connection.in_transaction:
            await self._connection.commit()
        await self._connection.execute("BEGIN IMMEDIATE")
    except Exception as exc:  # sqlite3.OperationalError: locked beyond busy_timeout
        raise sqlite_client.TransactionManagementError(exc) from exc


async def _safe_aenter(self: Any) -> Any:
    await self._trxlock.acquire()
    try:
        await self.ensure_connection()
        self.token = sqlite_client.get_connections().set(self.connection_name, self.connection)
        try:
            await self.connection.begin()
        except BaseException:
            sqlite_client.get_connections().reset(self.token)
            raise
    except BaseException:
        self._trxlock.release()
        raise
    return self.connection


# 3. Count only the rows a statement changed itself. Tortoise counts the difference of
#    `total_changes`, which includes rows written by triggers (the live notices of
#    migration 0003): a compare-and-set update of one booking would report 2, not 1.
#    The statement, its rows and its own count come back from aiosqlite's thread in one
#    hop, as before.


def _fetch_with_count(connection: Any, query: str, values: Any) -> tuple[int, list]:
    cursor = connection.execute(query, values)
    try:
        rows = cursor.fetchall()
        return max(cursor.rowcount, 0) or len(rows), rows
    finally:
        cursor.close()


@sqlite_client.translate_exceptions
async def _execute_query(self: Any, query: str, values: list | None = None) -> tuple[int, list]:
    query = query.replace("\x00", "'||CHAR(0)||'")
    async with self.acquire_connection() as connection:
        self.log.debug("%s: %s", query, values)
        return await on_sqlite_thread(connection, _fetch_with_count, query, values or [])


PATCHES = (
    (sqlite_client.SqliteTransactionWrapper, "begin", _begin_immediate),
    (sqlite_client.SqliteTransactionContext, "__aenter__", _safe_aenter),
    (sqlite_client.SqliteClient, "execute_query", _execute_query),
)


def patch_tortoise_sqlite() -> None:
    """Put the three fixes in place (idempotent; `railserve.db` does it on import)."""
    for owner, name, replacement in PATCHES:
        if not hasattr(owner, name):
            raise RuntimeError(f"tortoise changed: {owner.__name__}.{name} is gone")
        setattr(owner, name, replacement)
