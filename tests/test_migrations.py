"""The migrations build the schema the models describe, and 0004 keeps what 0003 made.

0004 drops three dead columns. On SQLite, Tortoise's way of dropping a column rebuilds the
table, which would silently drop the live-push triggers and the payments' indexes of 0003:
this checks, on the database the suite runs on, that they are all still there after it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tortoise import Tortoise
from tortoise.connection import get_connections
from tortoise.migrations.api import migrate as run_migrations
from tortoise.migrations.autodetector import MigrationAutodetector

from railserve import db
from tests.support.database import DatabaseFactory, using_postgres

DEAD = {("payments", "refund_reference"), ("payments", "refunded_at")}
DEAD |= {("simulated_charges", "refund_reference")}
TABLES = ("payments", "refunds", "bookings", "simulated_charges")
LIVE_TRIGGERS = {"live_payment_changed", "live_refund_changed", "live_booking_changed"}

SQLITE_SCHEMA = """
SELECT m.name AS tbl, 'column' AS kind, c.name AS name
FROM sqlite_master m JOIN pragma_table_info(m.name) c WHERE m.type = 'table'
UNION ALL SELECT tbl_name, type, name FROM sqlite_master WHERE type IN ('index', 'trigger')
"""
POSTGRES_SCHEMA = """
SELECT table_name AS tbl, 'column' AS kind, column_name AS name
FROM information_schema.columns WHERE table_schema = 'public'
UNION ALL SELECT tablename, 'index', indexname FROM pg_indexes WHERE schemaname = 'public'
UNION ALL SELECT c.relname, 'trigger', t.tgname FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal
"""


async def _schema() -> set[tuple[str, str, str]]:
    connection = get_connections().get("default")
    query = POSTGRES_SCHEMA if using_postgres() else SQLITE_SCHEMA
    rows: list[dict[str, Any]] = await connection.execute_query_dict(query)
    return {(row["tbl"], row["kind"], row["name"]) for row in rows if row["tbl"] in TABLES}


async def _migrate_and_read(url: str, target: str | None) -> set[tuple[str, str, str]]:
    await db.init(url)
    try:
        await run_migrations(config=db.tortoise_config(url), target=target)
        return await _schema()
    finally:
        await db.close()


def test_0004_drops_the_dead_columns_and_keeps_triggers_and_indexes(
    database_factory: DatabaseFactory,
):
    url = database_factory.new_empty_url()
    before = asyncio.run(_migrate_and_read(url, "railserve.0003_live_triggers_payment_indexes"))
    after = asyncio.run(_migrate_and_read(url, None))

    columns = {(table, name) for table, kind, name in before if kind == "column"}
    assert columns >= DEAD  # the test starts from the schema that had them
    assert not DEAD & {(table, name) for table, kind, name in after if kind == "column"}
    assert {name for _table, kind, name in after if kind == "trigger"} >= LIVE_TRIGGERS
    kept = {item for item in before if item[1] != "column" or item[::2] not in DEAD}
    assert after == kept, f"lost: {sorted(kept - after)}; new: {sorted(after - kept)}"


async def test_migrations_describe_the_models(app):
    """`makemigrations` would write nothing: the models and the migrations agree."""
    config = db.tortoise_config("sqlite://:memory:")["apps"]
    assert await MigrationAutodetector(Tortoise.apps, config).changes() == []
