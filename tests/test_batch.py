"""SQLite's one-call units (railserve.batch): committed together, each all or nothing."""

from __future__ import annotations

import asyncio

import pytest
from tortoise.exceptions import IntegrityError

from railserve import batch, db
from railserve.payment.models import LiveChange, WebhookEvent


@pytest.fixture(autouse=True)
def sqlite_only(app, settings):
    if not db.is_sqlite(settings.database_url):
        pytest.skip("the one-call units are SQLite's")


def inserting(key: str, then_fail: bool = False):
    row = batch.Insert(LiveChange(transaction_id=key))

    def work(unit: batch.Unit) -> int:
        new_id = unit.insert(row)
        if then_fail:
            raise batch.Unusual
        return new_id

    return row.instance, work


async def test_units_waiting_together_share_a_commit_and_fail_alone():
    kept, keep = inserting("b:1")
    dropped, drop = inserting("b:2", then_fail=True)
    later, keep_later = inserting("b:3")
    results = await asyncio.gather(
        batch.run(keep), batch.run(drop), batch.run(keep_later), return_exceptions=True
    )
    assert isinstance(results[1], batch.Unusual)
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
