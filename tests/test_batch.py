"""SQLite's one-call units (railserve.batch): committed together, each all or nothing."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from tortoise import connections
from tortoise.exceptions import IntegrityError

from railserve import batch, db
from railserve.payment.models import LiveChange, WebhookEvent
from railserve.store import compat


class Refused(Exception):
    """A unit's own failure: it is rolled back alone."""


@pytest.fixture(autouse=True)
def sqlite_only(app, settings):
    if not db.is_sqlite(settings.database_url):
        pytest.skip("the one-call units are SQLite's")


def inserting(key: str, then_fail: bool = False):
    row = batch.Insert(LiveChange(transaction_id=key))

    def work(unit: batch.Unit) -> int:
        new_id = unit.insert(row)
        if then_fail:
            raise Refused
        return new_id

    return row.instance, work


async def test_units_waiting_together_share_a_commit_and_fail_alone():
    kept, keep = inserting("b:1")
    dropped, drop = inserting("b:2", then_fail=True)
    later, keep_later = inserting("b:3")
    results = await asyncio.gather(
        batch.run(keep), batch.run(drop), batch.run(keep_later), return_exceptions=True
    )
    assert isinstance(results[1], Refused)
    assert await LiveChange.all().order_by("id").values_list("transaction_id", flat=True) == [
        "b:1",
        "b:3",
    ]
    assert kept.id == results[0] and kept._saved_in_db
    assert later.id == results[2] and later._saved_in_db
    assert dropped.id is None and not dropped._saved_in_db


async def test_a_constraint_refused_in_a_unit_is_the_orm_s_integrity_error():
    await WebhookEvent.create(id="evt_once", type="payment.succeeded", transaction_id="TXN")
    again = batch.Insert(WebhookEvent(id="evt_once", type="payment.succeeded", transaction_id="T"))
    _, other = inserting("b:9")
    results = await asyncio.gather(
        batch.run(lambda unit: unit.insert(again)), batch.run(other), return_exceptions=True
    )
    assert isinstance(results[0], IntegrityError)
    assert await LiveChange.filter(transaction_id="b:9").exists()  # its neighbour committed
    assert await WebhookEvent.filter(id="evt_once").values_list("transaction_id", flat=True) == [
        "TXN"
    ]


async def test_a_unit_alone_is_rolled_back_whole_when_it_fails():
    first = batch.Insert(LiveChange(transaction_id="b:10"))

    def half_then_fail(unit: batch.Unit) -> None:
        unit.insert(first)
        raise Refused

    with pytest.raises(Refused):
        await batch.run(half_then_fail)
    assert not await LiveChange.filter(transaction_id="b:10").exists()
    assert not first.instance._saved_in_db
    _, keep = inserting("b:11")  # the connection is usable, outside any transaction
    await batch.run(keep)
    assert await LiveChange.filter(transaction_id="b:11").exists()


async def on_its_thread(function):
    """Run `function(sqlite3 connection)` on aiosqlite's thread, which owns the connection."""
    connection = await compat.sqlite_client_connection(connections.get("default"))
    return await compat.on_sqlite_thread(connection, function)


@contextlib.asynccontextmanager
async def traced():
    """The statements SQLite runs on the connection within the block."""
    statements: list[str] = []
    await on_its_thread(lambda c: c.set_trace_callback(statements.append))
    try:
        yield statements
    finally:
        await on_its_thread(lambda c: c.set_trace_callback(None))


async def synchronous() -> int:
    return await on_its_thread(lambda c: c.execute("PRAGMA synchronous").fetchone()[0])


async def test_a_group_of_records_that_need_no_sync_commits_without_waiting_for_the_disk():
    await LiveChange.all().count()  # the connection is open
    level = await synchronous()
    row, work = inserting("b:20")
    async with traced() as statements:
        assert await batch.run(work, durable=False) == row.id
    assert "PRAGMA synchronous=NORMAL" in statements
    assert statements.index("PRAGMA synchronous=NORMAL") < statements.index("BEGIN IMMEDIATE")
    assert statements[-1] == f"PRAGMA synchronous={level}"  # restored after the COMMIT
    assert await synchronous() == level
    assert await LiveChange.filter(transaction_id="b:20").exists()


async def test_a_group_with_one_durable_unit_waits_for_the_disk():
    await LiveChange.all().count()
    _, record = inserting("b:21")
    _, payment = inserting("b:22")
    async with traced() as statements:
        await asyncio.gather(batch.run(record, durable=False), batch.run(payment))
    assert statements.count("COMMIT") == 1  # one group
    assert not any(s.startswith("PRAGMA synchronous") for s in statements)
    assert await LiveChange.filter(transaction_id__in=["b:21", "b:22"]).count() == 2


async def test_durable_units_alone_never_touch_the_sync_level():
    await LiveChange.all().count()
    _, work = inserting("b:23")
    async with traced() as statements:
        await batch.run(work)
    assert statements[0] == "BEGIN IMMEDIATE" and statements[-1] == "COMMIT"
    assert "SAVEPOINT unit" not in statements  # alone: the transaction is its savepoint
