"""Tortoise set-up for SQLite and PostgreSQL, and the one way to run a unit of work.

Tortoise's Quart integration is broken in 1.x, so the app initialises the ORM itself.
Every write that must be atomic goes through `atomic()`, which runs the transaction in a
task of its own: a client that hangs up cancels its request handler, and a cancelled
handler must never leave a transaction (or SQLite's connection lock) half-open.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tortoise import Tortoise
from tortoise.backends.sqlite import client as sqlite_client
from tortoise.transactions import in_transaction

from railserve.store import compat

T = TypeVar("T")

MODEL_MODULES = ["railserve.models", "railserve.payment.models"]
APP_LABEL = "railserve"


def normalise_url(url: str) -> str:
    """Accept postgresql:// as well as postgres://; give SQLite a busy timeout, and its
    statement journals in memory (a savepoint or a statement with triggers that outgrows
    64 KiB would otherwise open, write and delete a temporary file in every transaction)."""
    if url.startswith("postgresql://"):
        url = "postgres://" + url[len("postgresql://") :]
    if url.startswith("sqlite://") and url != "sqlite://:memory:":
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        query.setdefault("busy_timeout", "15000")
        query.setdefault("temp_store", "MEMORY")
        url = urlunsplit(parts._replace(query=urlencode(query)))
    return url


def tortoise_config(url: str) -> dict[str, Any]:
    return {
        "connections": {"default": normalise_url(url)},
        "apps": {
            APP_LABEL: {
                "models": MODEL_MODULES,
                "default_connection": "default",
                "migrations": "railserve.migrations",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite://")


async def init(url: str) -> None:
    if is_sqlite(url):
        path = urlsplit(normalise_url(url)).path
        if path and path != ":memory:":
            from pathlib import Path

            Path(path).parent.mkdir(parents=True, exist_ok=True)
    await Tortoise.init(config=tortoise_config(url), _enable_global_fallback=True)
    _initialised["sqlite"] = is_sqlite(url)


async def close() -> None:
    await Tortoise.close_connections()


async def migrate(url: str) -> None:
    """Create or upgrade the schema through the migrations in railserve/migrations."""
    from tortoise.migrations.api import migrate as run_migrations

    await init(url)
    try:
        await run_migrations(config=tortoise_config(url))
    finally:
        await close()


async def atomic(work: Callable[[], Awaitable[T]]) -> T:
    """Run `work` inside one transaction that a cancelled caller cannot interrupt.

    The transaction runs in its own task; if the caller is cancelled (client gone), the
    task still commits or rolls back and releases its connection.
    """

    async def unit() -> T:
        async with in_transaction():
            result = await work()
        committed()
        return result

    task = asyncio.ensure_future(unit())
    return await asyncio.shield(task)


def committed() -> None:
    """Runs in this process after every transaction of `atomic` or `batch.run` commits.

    This worker's live streams learn of its own commits at once, not at the next poll.
    """
    from railserve.payment.live import wake_pollers  # the payment layer imports this module

    wake_pollers()


# What `init` was last given: asked several times per payment, and looking the connection
# up (a context variable, a loop check) cost more than the answer.
_initialised = {"sqlite": False}


def sqlite_in_use() -> bool:
    """Whether the default connection is SQLite's (the database of the last `init`)."""
    return _initialised["sqlite"]


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
        return await compat.on_sqlite_thread(connection, _fetch_with_count, query, values or [])


sqlite_client.SqliteTransactionWrapper.begin = _begin_immediate
sqlite_client.SqliteTransactionContext.__aenter__ = _safe_aenter
sqlite_client.SqliteClient.execute_query = _execute_query


# For Tortoise's own CLI: `tortoise -c railserve.db.TORTOISE_ORM makemigrations`.
TORTOISE_ORM = tortoise_config("sqlite://:memory:")
