"""Tortoise set-up for SQLite and PostgreSQL, and the one way to run a unit of work.

Tortoise's Quart integration is broken in 1.x, so the app initialises the ORM itself.
Every write that must be atomic goes through `atomic()`, which runs the transaction in a
task of its own: a client that hangs up cancels its request handler, and a cancelled
handler must never leave a transaction (or SQLite's connection lock) half-open.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
from tortoise import Tortoise
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.transactions import in_transaction

from railserve import running
from railserve.store import compat

T = TypeVar("T")
log = logging.getLogger(__name__)

MODEL_MODULES = [
    "railserve.models",
    "railserve.payment.models",
    "railserve.payment.providers.models",
]
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


class PooledConnection(asyncpg.Connection):
    """A pooled PostgreSQL connection given back to its pool without asyncpg's reset query.

    asyncpg sends `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;` on
    every release: one round trip per pool acquisition, paid by each of a payment's
    statements. Nothing of ours leaves session state on a pooled connection: no session
    `SET` (none anywhere in railserve/), no advisory lock, no cursor outside a transaction
    (asyncpg's cursors need one), and LISTEN only on live push's own dedicated connection
    (payment/live/hub.py). What asyncpg does without the query still happens on release: an
    open transaction is rolled back (tests/store/test_pool.py)."""

    def get_reset_query(self) -> str:  # asyncpg's documented override
        return ""


def connection_config(url: str) -> str | dict[str, Any]:
    """Tortoise's connection: SQLite by its URL; PostgreSQL's pool of PooledConnection."""
    url = normalise_url(url)
    if is_sqlite(url):
        return url
    config = expand_db_url(url)
    config["credentials"]["connection_class"] = PooledConnection
    return config


def tortoise_config(url: str) -> dict[str, Any]:
    return {
        "connections": {"default": connection_config(url)},
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


# One lock order for every transaction that takes several row locks, so that two of them
# never wait on each other (PostgreSQL; SQLite's BEGIN IMMEDIATE takes the whole database
# at once): payments, then trains, then bookings, then refunds. Settlement goes this way
# (the payment, the train's seats, the booking); cancellations and refunds lock the train
# before the booking (`refunds.opening.lock_booking`); a refund is moved only under its payment's
# lock (steps/refund.py: the gateway's verdict, an operator's retry or offline settlement).
LOCK_ORDER = ("payments", "trains", "bookings", "refunds")

# A deadlock or a serialization failure (SQLSTATE class 40: 40P01, 40001) rolls the whole
# transaction back; running the unit again is safe, a bounded number of times. A unit must
# therefore read what it changes inside the transaction (every unit here does).
RETRIED_SQLSTATES = frozenset({"40P01", "40001"})
ATTEMPTS = 4


def is_retryable(error: BaseException) -> bool:
    """Whether `error` (or what it wraps) is a deadlock or serialization failure."""
    seen: BaseException | None = error
    while seen is not None:
        if getattr(seen, "sqlstate", None) in RETRIED_SQLSTATES:
            return True
        seen = seen.__cause__
    return False


async def atomic(work: Callable[[], Awaitable[T]]) -> T:
    """Run `work` inside one transaction that a cancelled caller cannot interrupt.

    The transaction runs in its own task; if the caller is cancelled (client gone), the
    task still commits or rolls back and releases its connection. A deadlock or a
    serialization failure runs the unit again, at most `ATTEMPTS` times in all.
    """

    async def unit() -> T:
        with running.told_after_commit() as moves:

            async def once() -> T:
                moves.clear()  # a transaction run again tells only its own moves
                async with in_transaction():
                    return await work()

            result = await retried(once)
        committed()
        for tell in moves:  # logged and counted once they hold
            tell()
        return result

    task = asyncio.ensure_future(unit())
    return await asyncio.shield(task)


async def retried(once: Callable[[], Awaitable[T]]) -> T:
    """Run one transaction (`once`) again after a deadlock or a serialization failure, at
    most `ATTEMPTS` times in all; `once` must begin and end its own transaction."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return await once()
        except Exception as error:
            if attempt == ATTEMPTS or not is_retryable(error):
                raise
            log.warning(
                "transaction rolled back (%s), attempt %s: running it again", error, attempt
            )
            await asyncio.sleep(random.uniform(0, 0.02 * attempt))  # let the winner finish
    raise AssertionError("unreachable")


# Called after each commit of this process. Layers above register here when they start
# (the live streams' poller: this worker's own commits reach them at once, not at the next
# poll), so this module imports nothing from them.
COMMIT_HOOKS: list[Callable[[], None]] = []


def on_commit(hook: Callable[[], None]) -> None:
    """Have `hook` called after each commit of this process (once, however often asked)."""
    if hook not in COMMIT_HOOKS:
        COMMIT_HOOKS.append(hook)


def committed() -> None:
    """Runs in this process after every transaction of `atomic` or `batch.run` commits."""
    for hook in COMMIT_HOOKS:
        hook()


# What `init` was last given: asked several times per payment, and looking the connection
# up (a context variable, a loop check) cost more than the answer.
_initialised = {"sqlite": False}


def sqlite_in_use() -> bool:
    """Whether the default connection is SQLite's (the database of the last `init`)."""
    return _initialised["sqlite"]


# Tortoise's SQLite client, fixed where it needs it: railserve/store/compat.py.
compat.patch_tortoise_sqlite()


# For Tortoise's own CLI: `tortoise -c railserve.db.TORTOISE_ORM makemigrations`.
TORTOISE_ORM = tortoise_config("sqlite://:memory:")
