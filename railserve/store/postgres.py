"""PostgreSQL's executor: a step in one round trip when it takes its usual path.

First, the step is planned: run with the answers of its usual path (each write changes
`usual` rows, an insert's key is a reference to it), which gives the statements of that
path. They are sent as ONE statement of chained data-modifying CTEs, whose final SELECT
checks that each changed what the plan assumed and fails the whole statement otherwise
(nothing of it is committed). Then, or when the usual path cannot be planned (it reads),
the step runs for real: its statements one by one on one connection in one transaction,
each answer deciding the next. Either way each statement is asyncpg's prepared statement
(no ORM query building, no model objects) and everything commits together or not at all.
The work runs in a task of its own, shielded from a caller that is cancelled.

Within one statement the CTEs share one snapshot and none sees another's writes; the
steps' usual paths never read what they wrote before (the executors' comparison test,
tests/payment/test_steps.py, holds both forms to the same rows).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

import asyncpg
from tortoise import connections
from tortoise.exceptions import IntegrityError, OperationalError
from tortoise.transactions import in_transaction

from railserve import db, store
from railserve.store import compat

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

    async def unit() -> T:
        planned = await _in_one_statement(make, saved)
        if planned is not _OFF_PLAN:
            return planned
        saved.clear()
        async with in_transaction() as transaction, transaction.acquire_connection() as connection:
            return await store.drive_async(
                make(), lambda statement: send(connection, statement, transaction), saved
            )

    try:
        result = await asyncio.shield(asyncio.ensure_future(unit()))
    except store.Rollback as rollback:
        return rollback.result
    for instance, key, generated in saved:
        compat.mark_saved(instance, key, generated)
    db.committed()
    return result


# --- the usual path as one statement ------------------------------------------------------

_OFF_PLAN = object()
# The final SELECT's refusal when a statement did not change what the plan assumed: a
# failed cast aborts the whole statement, and its message says why in the server's log.
# Its text depends on the rows (the counts), so the planner cannot fold it in advance.
OFF_PLAN = "CAST('railserve: the step left its usual path: ' || {counts} AS integer)"
_INSERT = re.compile(r"^(INSERT INTO .+?\)) VALUES \((.*)\)( RETURNING .*)?$", re.S)


class Unplannable(Exception):
    """This step's usual path cannot be sent as one statement."""


@dataclass(frozen=True)
class Key:
    """The key of the plan's `index`-th statement (an INSERT), as the plan's steps see it."""

    index: int


def plan(step: store.Step[T]) -> tuple[list[store.Statement], T] | None:
    """The statements of `step`'s usual path and what it returns then; None if it reads."""
    statements: list[store.Statement] = []
    answer: Any = None
    while True:
        try:
            statement = step.send(answer)
        except StopIteration as done:
            return statements, done.value
        if isinstance(statement, store.Read) or (
            isinstance(statement, store.Write) and store.text(statement.sql, "postgres") is None
        ):
            step.close()
            return None
        statements.append(statement)
        if isinstance(statement, store.Insert):
            answer = Key(len(statements) - 1)
        else:
            answer = statement.check(statement.usual)


def compile_plan(statements: list[store.Statement], client: Any) -> tuple[str, list, list]:
    """(SQL, values, inserted rows) of the plan as one statement with chained CTEs."""
    parts: list[str] = []
    values: list = []
    counts: list[tuple[str, int]] = []
    keys: list[str] = []
    inserted: list = []

    def param(value: Any) -> str:
        if isinstance(value, Key):
            return f'(SELECT "id" FROM s{value.index})'
        values.append(value)
        return f"${len(values)}"

    for index, statement in enumerate(statements):
        if isinstance(statement, store.Insert):
            head, row, returning, generated = _insert(statement.instance, client)
            parts.append(f"s{index} AS ({head} VALUES ({','.join(map(param, row))}){returning})")
            keys.append(f'(SELECT "id" FROM s{index})')
            inserted.append((statement.instance, index, generated))
        else:
            sql = _numbered_from(store.text(statement.sql, "postgres"), statement.values, param)
            parts.append(f"s{index} AS ({sql} RETURNING 1)")
            counts.append((f"(SELECT count(*) FROM s{index})", int(statement.usual)))
    ok = " AND ".join(f"{count} = {usual}" for count, usual in counts) or "TRUE"
    found = " || ',' || ".join(count for count, _ in counts) or "''"
    refuse = OFF_PLAN.format(counts=found)
    select = ", ".join(keys) or "1"
    sql = f"WITH {', '.join(parts)} SELECT CASE WHEN {ok} THEN 0 ELSE {refuse} END, {select}"
    return sql, values, inserted


def _numbered_from(sql: str, given: list, param: Callable[[Any], str]) -> str:
    """`sql` with each `?` replaced by `param` of the next of `given`."""
    values = iter(given)
    return re.sub(r"\?", lambda _: param(next(values)), sql)


def _insert(instance: Any, client: Any) -> tuple[str, list, str, bool]:
    """Tortoise's INSERT of `instance` cut at VALUES, its values (keys of earlier inserts
    left as Key), the RETURNING clause, and whether the database makes its key."""
    pending = {name: value for name, value in vars(instance).items() if isinstance(value, Key)}
    for name in pending:
        setattr(instance, name, None)
    try:
        sql, row, generated = compat.insert_statement(instance, client)
        columns = compat.insert_columns(instance, client)
    finally:
        for name, value in pending.items():
            setattr(instance, name, value)
    shape = _INSERT.match(sql)
    if shape is None:  # not the shape compat.py vouches for: the step runs statement by statement
        raise Unplannable(sql)
    head, _, returning = shape.groups()
    row = [pending.get(column, value) for column, value in zip(columns, row, strict=True)]
    return head, row, returning or ' RETURNING 1 AS "id"', generated


async def _in_one_statement(make: Callable[[], store.Step[T]], saved: list) -> Any:
    """The step's usual path in one round trip; _OFF_PLAN when it took another (then
    nothing of it holds) or cannot be planned."""
    planned = plan(make())
    if planned is None:
        return _OFF_PLAN
    statements, result = planned
    client = connections.get("default")
    try:
        sql, values, inserted = compile_plan(statements, client)
    except Unplannable:
        return _OFF_PLAN
    _observe(sql)
    try:
        async with client.acquire_connection() as connection:
            row = await connection.fetchrow(sql, *values)
    except asyncpg.PostgresError:
        return _OFF_PLAN  # off plan, or refused: the real run says how, statement by statement
    known: dict[int, Any] = {}
    for position, (instance, index, generated) in enumerate(inserted):
        known[index] = row[position + 1] if generated else instance.pk
        saved.append((instance, known[index], generated))
    for instance, _index, _generated in inserted:  # references to keys, now known
        for name, value in list(vars(instance).items()):
            if isinstance(value, Key):
                setattr(instance, name, known[value.index])
    return result
