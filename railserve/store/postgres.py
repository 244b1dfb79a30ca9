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
on its own. Each statement is asyncpg's prepared
statement (no ORM query building, no model objects) and everything commits together or
not at all. The work runs in a task of its own, shielded from a caller that is cancelled.

Within one statement the CTEs share one snapshot and none sees another's writes; the
steps never read what they wrote in the same planned part (the executors' comparison
test, tests/payment/test_steps.py, holds every form to the same rows). A read that locks
a row is sent alone: the statement after it has a new snapshot (READ COMMITTED), which
sees everything committed before the lock was granted.
"""

from __future__ import annotations

import asyncio
import re
import secrets
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
            if (read or at_once) and planned and _plannable(statement):
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
    while statement is not None and _plannable(statement):
        statements.append(statement)
        try:
            statement = progress.next((_assume(statement, number), None))
        except (TypeError, Unplannable) as error:  # a count used as a number
            raise _LeftPlan from error
        number += 1
    try:
        compiled = compile_plan(statements, _client(), number - len(statements), known)
    except Unplannable as error:
        raise _LeftPlan from error
    sql, values, inserted, counted = compiled
    _observe(sql)
    try:
        row = await connection.fetchrow(sql, *values)
    except asyncpg.PostgresError as error:
        raise _LeftPlan from error
    _answered(row, inserted, counted, known, progress.saved)
    return statement, number


class _LeftPlan(Exception):
    """A planned part of a step did not go as planned: nothing of the step holds."""


def _client() -> Any:
    return connections.get("default")


# --- the usual path as one statement ------------------------------------------------------

_OFF_PLAN = object()
_READS = object()  # the usual path reads: not tried as one statement
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


# Where a plan's count stands in text, until the statement replaces it by the number. The
# text also carries passengers' and operators' words: a mark holds a secret of this
# process, so no such words can pass for one.
_MARK = f"\ufffc{secrets.token_hex(8)}\ufffc"


@dataclass(frozen=True)
class Counted:
    """The answer of the plan's `index`-th statement (a Count), as the plan's steps see
    it: it can be written into text (as a mark the statement replaces by the number) or
    sent as a value; used as a number in Python, the step cannot be planned."""

    index: int

    def __format__(self, spec: str) -> str:
        return f"{_MARK}{self.index}{_MARK}"

    def __str__(self) -> str:
        return format(self)

    def __bool__(self) -> bool:
        raise Unplannable("a count is known only when the statement runs")


def _plannable(statement: store.Statement) -> bool:
    if isinstance(statement, store.Insert):
        return True
    if store.text(statement.sql, "postgres") is None:
        return False
    return not isinstance(statement, store.Read) or isinstance(statement, store.Count)


def _assume(statement: store.Statement, index: int) -> Any:
    """The answer the plan gives the `index`-th statement."""
    if isinstance(statement, store.Insert):
        return Key(index)
    if isinstance(statement, store.Count):
        return [(Counted(index),)]
    return statement.check(statement.usual)


def plan(step: store.Step[T]) -> tuple[list[store.Statement], T] | None:
    """The statements of `step`'s usual path and what it returns then; None if it reads."""
    statements: list[store.Statement] = []
    answer: Any = None
    while True:
        try:
            statement = step.send(answer)
        except StopIteration as done:
            return statements, done.value
        except (TypeError, Unplannable):  # a count used as a number
            return None
        if not _plannable(statement):
            step.close()
            return None
        statements.append(statement)
        answer = _assume(statement, len(statements) - 1)


def compile_plan(
    statements: list[store.Statement], client: Any, first: int = 0, known: dict | None = None
) -> tuple[str, list, list, list]:
    """(SQL, values, inserted rows, counted statements) of the plan as one statement with
    chained CTEs; its statements are numbered from `first`, `known` has the keys of earlier
    ones. The SQL depends only on the plan's shape (its statements' SQL, which values are
    keys, counts or text naming counts), so it is built once per shape (`_SHAPES`); each
    call gathers the values in the same walk (`_walk`)."""
    known = known or {}
    plan = _walk(statements, client, first, known, None)
    sql = _SHAPES.get(plan.shape)
    if sql is None:
        sql = _walk(statements, client, first, known, []).sql
        if len(_SHAPES) >= _SHAPES_KEPT:
            _SHAPES.clear()
        _SHAPES[plan.shape] = sql
    return sql, plan.values, plan.inserted, plan.counted


_SHAPES: dict[tuple, str] = {}
_SHAPES_KEPT = 512  # distinct shapes: a handful per step and plan; bounded all the same


@dataclass
class _Walked:
    shape: list
    values: list
    inserted: list
    counted: list
    sql: str = ""


def _walk(
    statements: list[store.Statement], client: Any, first: int, known: dict, parts: list | None
) -> _Walked:
    """One pass over the plan: its shape and values, and its SQL when `parts` is a list
    (the text is built only for a shape not seen before)."""
    walked = _Walked([first], [], [], [])
    values = walked.values
    counts: list[tuple[str, int]] = []
    keys: list[str] = []

    def param(value: Any) -> str:
        kind = type(value)
        if kind is Key or kind is Counted:
            if value.index not in known:
                walked.shape.append((kind, value.index))
                column = '"id"' if kind is Key else "*"
                return f"(SELECT {column} FROM s{value.index})"
            value = known[value.index]
        values.append(value)
        if not (type(value) is str and _MARK in value):
            walked.shape.append(None)
            return f"${len(values)}" if parts is not None else ""
        marks = _marks(value)  # counts named in the text
        walked.shape.append(tuple(marks))
        text = f"${len(values)}"
        for index in marks:
            values.append(f"{_MARK}{index}{_MARK}")
            text = f"replace({text}::text, ${len(values)}, (SELECT * FROM s{index})::text)"
        return text

    for index, statement in enumerate(statements, first):
        if isinstance(statement, store.Insert):
            head, row, returning, generated = _insert(statement.instance, client)
            walked.shape.append(head)
            row_text = [param(value) for value in row]
            walked.inserted.append((statement.instance, index, generated))
            if parts is not None:
                parts.append(f"s{index} AS ({head} VALUES ({','.join(row_text)}){returning})")
                keys.append(f'(SELECT "id" FROM s{index})')
            continue
        sql = store.text(statement.sql, "postgres")
        counting = isinstance(statement, store.Count)
        walked.shape.append((sql, None if counting else statement.usual, counting))
        pieces = _pieces(sql)
        given = [param(value) for value in statement.values]
        if counting:
            walked.counted.append(index)
        elif parts is not None:
            counts.append((f"(SELECT count(*) FROM s{index})", int(statement.usual)))
        if parts is None:
            continue
        text = "".join(piece + mark for piece, mark in zip(pieces, [*given, ""], strict=True))
        parts.append(f"s{index} AS ({text})" if counting else f"s{index} AS ({text} RETURNING 1)")
    walked.shape = tuple(walked.shape)
    if parts is None:
        return walked
    ok = " AND ".join(f"{count} = {usual}" for count, usual in counts) or "TRUE"
    found = " || ',' || ".join(count for count, _ in counts) or "''"
    refuse = OFF_PLAN.format(counts=found)
    counted = (f"(SELECT * FROM s{index})" for index in walked.counted)
    select = ", ".join([*keys, *counted]) or "1"
    walked.sql = f"WITH {', '.join(parts)} SELECT CASE WHEN {ok} THEN 0 ELSE {refuse} END, {select}"
    return walked


@lru_cache(maxsize=256)
def _pieces(sql: str) -> tuple[str, ...]:
    """`sql` cut at each `?` placeholder (the statements carry no `?` literal)."""
    return tuple(sql.split("?"))


_MARKED = re.compile(f"{re.escape(_MARK)}(\\d+){re.escape(_MARK)}")


def _marks(text: str) -> list[int]:
    return [int(index) for index in _MARKED.findall(text)]


def _answered(row: Any, inserted: list, counted: list, known: dict, saved: list) -> None:
    """The planned statement's answers given back to its rows: each insert's key (also in
    the rows that refer to it) and each count in the text that named it."""
    for position, (instance, index, generated) in enumerate(inserted):
        known[index] = row[position + 1] if generated else instance.pk
        saved.append((instance, known[index], generated))
    for position, index in enumerate(counted, len(inserted) + 1):
        known[index] = row[position]
    for instance, _index, _generated in inserted:
        for name, value in list(vars(instance).items()):
            if isinstance(value, Key | Counted):
                setattr(instance, name, known[value.index])
            elif isinstance(value, str) and _MARK in value:
                for index in _marks(value):
                    value = value.replace(f"{_MARK}{index}{_MARK}", str(known[index]))
                setattr(instance, name, value)


def _insert(instance: Any, client: Any) -> tuple[str, list, str, bool]:
    """Tortoise's INSERT of `instance` cut at VALUES, its values (keys of earlier inserts
    left as Key), the RETURNING clause, and whether the database makes its key."""
    pending = {name: value for name, value in vars(instance).items() if isinstance(value, Key)}
    for name in pending:
        setattr(instance, name, None)
    try:
        sql, row, generated = compat.insert_statement(instance, client)
    finally:
        for name, value in pending.items():
            setattr(instance, name, value)
    head, returning = _cut(sql)
    if pending:
        columns = compat.insert_columns(instance, client)
        row = [pending.get(column, value) for column, value in zip(columns, row, strict=True)]
    return head, row, returning, generated


@lru_cache(maxsize=64)
def _cut(sql: str) -> tuple[str, str]:
    """An INSERT's head (up to VALUES) and its RETURNING clause (one, if it has none)."""
    shape = _INSERT.match(sql)
    if shape is None:  # not the shape compat.py vouches for: the step runs statement by statement
        raise Unplannable(sql)
    head, _, returning = shape.groups()
    return head, returning or ' RETURNING 1 AS "id"'


async def _in_one_statement(make: Callable[[], store.Step[T]], saved: list) -> Any:
    """The step's usual path in one round trip; _READS when it reads (nothing was sent),
    _OFF_PLAN when it took another (then nothing of it holds) or cannot be planned."""
    planned = plan(make())
    if planned is None:
        return _READS
    statements, result = planned
    client = _client()
    try:
        sql, values, inserted, counted = compile_plan(statements, client)
    except Unplannable:
        return _OFF_PLAN
    _observe(sql)
    try:
        async with client.acquire_connection() as connection:
            row = await connection.fetchrow(sql, *values)
    except asyncpg.PostgresError:
        return _OFF_PLAN  # off plan, or refused: the real run says how, statement by statement
    _answered(row, inserted, counted, {}, saved)
    return result
