"""PostgreSQL's executor: a step in one round trip when it takes its usual path.

First, the step is planned: run with the answers of its usual path (each write changes
`usual` rows, an insert's key is a reference to it, a `Count` is counted in the statement
and written into the text that names it), which gives the statements of that path. They
are sent as ONE statement of chained data-modifying CTEs, whose final SELECT checks that
each changed what the plan assumed and fails the whole statement otherwise (nothing of it
is committed). When the usual path reads (a row lock: the full-train settlement's train
row), nothing is tried: the step runs for real on one connection in one transaction, each
read sent alone and answered for real, and the statements between two reads planned as
ONE statement. So a hot row locked by a read is held for one more statement and the
COMMIT, whatever the step writes after it. When the one statement left its plan, the step
runs for real too, one statement at a time up to its first read. A planned part that
leaves its plan rolls the transaction back, and the step runs once more, every statement
on its own. Each statement is asyncpg's prepared statement (no ORM query building, no
model objects) and everything commits together or not at all. store.planner plans them. The work runs in a task of its own, shielded from a caller that is cancelled.

Within one statement the CTEs share one snapshot and none sees another's writes; the
steps never read what they wrote in the same planned part (the executors' comparison
test, tests/payment/test_steps.py, holds every form to the same rows). A read that locks
a row is sent alone: the statement after it has a new snapshot (READ COMMITTED), which
sees everything committed before the lock was granted.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any, TypeVar

import asyncpg
from tortoise import connections
from tortoise.exceptions import IntegrityError, OperationalError
from tortoise.transactions import in_transaction

from railserve import db, store
from railserve.store import compat, planner

T = TypeVar("T")


@lru_cache(maxsize=256)
def numbered(sql: str) -> str:
    """`?` placeholders as PostgreSQL's `$1, $2, ...` (the statements carry no `?` literal)."""
    count = iter(range(1, sql.count("?") + 1))
    return re.sub(r"\?", lambda _: f"${next(count)}", sql)


async def execute(connection: Any, statement: store.Statement, client: Any) -> tuple[Any, Any]:
    """Send one statement: (answer for the step, the inserted row or None)."""
    if isinstance(statement, store.Insert):
        sql, values, generated = compat.insert_statement(statement.instance, client)
        _observe(sql)
        if generated:  # Tortoise's PostgreSQL INSERT returns the new key
            key = await connection.fetchval(sql, *values)
        else:
            await connection.execute(sql, *values)
            key = statement.instance.pk
        return key, (statement.instance, key, generated)
    sql = store.text(statement.sql, "postgres")
    if sql is None:
        return [], None
    sql = numbered(sql)
    _observe(sql)
    if isinstance(statement, store.Read):
        return [tuple(row) for row in await connection.fetch(sql, *statement.values)], None
    status = await connection.execute(sql, *statement.values)
    return statement.check(int(status.rsplit(" ", 1)[-1])), None


def _observe(sql: str) -> None:
    for observe in store.OBSERVERS:
        observe(sql)


async def send(connection: Any, statement: store.Statement, client: Any) -> tuple[Any, Any]:
    """`execute`, with asyncpg's errors as the ORM's (what callers already catch)."""
    try:
        return await execute(connection, statement, client)
    except asyncpg.IntegrityConstraintViolationError as error:
        raise IntegrityError(error) from error
    except asyncpg.PostgresError as error:
        raise OperationalError(error) from error


async def run(make: Callable[[], store.Step[T]]) -> T:
    saved: list = []

    async def once() -> T:
        saved.clear()
        planned = await _in_one_statement(make, saved)
        if planned is not _OFF_PLAN and planned is not _READS:
            return planned
        try:  # parts planned from the start if the usual path was not tried, else after a read
            return await _for_real(make(), saved, planned=True, at_once=planned is _READS)
        except _LeftPlan:
            return await _for_real(make(), saved, planned=False, at_once=False)

    try:
        # A deadlock or serialization failure runs the whole step again (db.retried).
        result = await asyncio.shield(asyncio.ensure_future(db.retried(once)))
    except store.Rollback as rollback:
        return rollback.result
    for instance, key, generated in saved:
        compat.mark_saved(instance, key, generated)
    db.committed()
    return result


async def _for_real(step: store.Step[T], saved: list, *, planned: bool, at_once: bool) -> T:
    """`step` in one transaction, each statement's answer deciding the next; if `planned`,
    the statements between two reads (from the first one if `at_once`, else from the first
    read) go as one statement (_LeftPlan: it left its plan; the transaction is rolled back)."""
    saved.clear()
    known: dict[int, Any] = {}  # keys and counts of planned parts, by statement number
    async with in_transaction() as transaction, transaction.acquire_connection() as connection:
        progress = store.Progress(step, saved)
        statement, number, read = progress.next(None), 0, False
        while statement is not None:
            if (read or at_once) and planned and planner.plannable(statement):
                statement, number = await _rest(progress, statement, number, connection, known)
                continue
            reply = await send(connection, statement, transaction)
            read = read or isinstance(statement, store.Read)
            statement, number = progress.next(reply), number + 1
        return progress.result


async def _rest(
    progress: store.Progress, statement: store.Statement, number: int, connection: Any, known: dict
) -> tuple[store.Statement | None, int]:
    """From `statement` (the `number`-th of the step) to the step's next read or its end,
    planned and sent as one statement: (the next statement, its number)."""
    statements: list[store.Statement] = []
    while statement is not None and planner.plannable(statement):
        statements.append(statement)
        try:
            statement = progress.next((planner.assume(statement, number), None))
        except (TypeError, planner.Unplannable) as error:  # a count used as a number
            raise _LeftPlan from error
        number += 1
    try:
        compiled = planner.compile_plan(statements, _client(), number - len(statements), known)
    except planner.Unplannable as error:
        raise _LeftPlan from error
    sql, values, inserted, counted = compiled
    _observe(sql)
    try:
        row = await connection.fetchrow(sql, *values)
    except asyncpg.PostgresError as error:
        raise _LeftPlan from error
    planner.answered(row, inserted, counted, known, progress.saved)
    return statement, number


class _LeftPlan(Exception):
    """A planned part of a step did not go as planned: nothing of the step holds."""


def _client() -> Any:
    return connections.get("default")


# --- the usual path as one statement ------------------------------------------------------

_OFF_PLAN = object()
_READS = object()  # the usual path reads: not tried as one statement


async def _in_one_statement(make: Callable[[], store.Step[T]], saved: list) -> Any:
    """The step's usual path in one round trip; _READS when it reads (nothing was sent),
    _OFF_PLAN when it took another (then nothing of it holds) or cannot be planned."""
    planned = planner.plan(make())
    if planned is None:
        return _READS
    statements, result = planned
    client = _client()
    try:
        sql, values, inserted, counted = planner.compile_plan(statements, client)
    except planner.Unplannable:
        return _OFF_PLAN
    _observe(sql)
    try:
        async with client.acquire_connection() as connection:
            row = await connection.fetchrow(sql, *values)
    except asyncpg.PostgresError:
        return _OFF_PLAN  # off plan, or refused: the real run says how, statement by statement
    planner.answered(row, inserted, counted, {}, saved)
    return result
