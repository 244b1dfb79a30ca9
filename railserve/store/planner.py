"""PostgreSQL's planner: a step's statements as ONE statement of chained data-modifying CTEs.

A step is planned by running it with the answers of its usual path (`plan`: each write
changes `usual` rows, an insert's key is a `Key` to it, a `Count` is a `Counted` the
statement counts and writes into the text that names it). `compile_plan` turns those
statements into one statement whose final SELECT checks that each changed what the plan
assumed and fails the whole statement otherwise. Its SQL depends only on the plan's
shape, so it is built once per shape; each call gathers the values. `answered` gives the
statement's answers (keys, counts) back to the rows. store.postgres sends what this plans.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

from railserve import store
from railserve.store import compat

T = TypeVar("T")


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


def plannable(statement: store.Statement) -> bool:
    if isinstance(statement, store.Insert):
        return True
    if store.text(statement.sql, "postgres") is None:
        return False
    return not isinstance(statement, store.Read) or isinstance(statement, store.Count)


def assume(statement: store.Statement, index: int) -> Any:
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
        if not plannable(statement):
            step.close()
            return None
        statements.append(statement)
        answer = assume(statement, len(statements) - 1)


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


def answered(row: Any, inserted: list, counted: list, known: dict, saved: list) -> None:
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
