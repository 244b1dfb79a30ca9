"""Run a money step, written once, on whichever database is in use.

A step (railserve/payment/steps/) is a generator: it yields the statements it sends —
`Write`, `Read`, `Count`, `Insert` — and receives each one's answer (rows changed, rows
read, the new key), so what it reads, decides and writes is in one place, with no
database in sight. An executor per database drives it inside one transaction:

- SQLite (`store.sqlite`): the whole step as one call on aiosqlite's thread, in
  `railserve.batch`'s group commit (one round trip, one fsync per group).
- PostgreSQL (`store.postgres`): the step's usual path as one statement; otherwise its
  statements on one asyncpg connection inside one transaction, those after its first read
  (a row lock) again as one statement (no ORM query building, no model objects).

Every statement's SQL is text with `?` placeholders, written once for both databases (the
PostgreSQL executor numbers them); values are always parameters. A statement that must
change a given number of rows says so (`expect`); a mismatch raises its `otherwise`, which
rolls the whole step back. `run` answers with the step's return value, or with the
`result` of a `Rollback` the step (or a mismatch) raised.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tortoise.models import Model

from railserve import db

T = TypeVar("T")

# Called with each statement an executor sends (tests/support/queries.py counts them).
OBSERVERS: list[Callable[[str], None]] = []


class Rollback(Exception):
    """Raised by a step (or by a mismatch) to undo all it wrote; `run` returns `result`."""

    def __init__(self, result: Any = None) -> None:
        super().__init__(result)
        self.result = result


@dataclass(frozen=True)
class Write:
    """An UPDATE or DELETE; answered with the number of rows it changed itself (not its
    triggers'). `sql` is one text, or one per dialect ("sqlite", "postgres")."""

    sql: str | dict[str, str]
    values: list = field(default_factory=list)
    expect: int | None = None
    otherwise: BaseException | None = None
    usual: int = 1  # what it changes on the step's usual path (store.postgres plans on it)

    def check(self, count: int) -> int:
        if self.expect is not None and count != self.expect:
            raise self.otherwise if self.otherwise is not None else Rollback()
        return count


@dataclass(frozen=True)
class Read:
    """A SELECT; answered with its rows as tuples. A dialect missing from a per-dialect
    `sql` skips the read there (answered with no rows): a row lock SQLite does not need."""

    sql: str | dict[str, str]
    values: list = field(default_factory=list)


@dataclass(frozen=True)
class Count(Read):
    """A Read of one number (one row, one column) that the step only names in text it
    writes (a waitlist position in a notice). Answered like a Read; PostgreSQL's planner
    may count it within the statement that writes that text (store.postgres)."""


@dataclass(frozen=True)
class Insert:
    """A model instance's INSERT, as Tortoise's executor writes it for the dialect;
    answered with the new primary key. Marked saved on the instance once committed."""

    instance: Model


Statement = Write | Read | Count | Insert
Step = Generator[Statement, Any, T]


class Progress:
    """Where a step stands: the next statement to send, or its result once it returned."""

    def __init__(self, step: Step[T], saved: list) -> None:
        self.step = step
        self.saved = saved  # (instance, key, generated) of each row inserted
        self.result: Any = None

    def next(self, reply: tuple[Any, Any] | None) -> Statement | None:
        """Give the step the last statement's answer; its next statement (None: done)."""
        answer = None
        if reply is not None:
            answer, inserted = reply
            if inserted is not None:
                self.saved.append(inserted)
        try:
            return self.step.send(answer)
        except StopIteration as done:
            self.result = done.value
            return None


def drive(step: Step[T], send: Callable[[Statement], tuple[Any, Any]], saved: list) -> T:
    """Run `step` to its end, each statement sent by `send` (-> answer, inserted row)."""
    progress = Progress(step, saved)
    statement = progress.next(None)
    while statement is not None:
        statement = progress.next(send(statement))
    return progress.result


async def drive_async(step: Step[T], send: Callable[..., Any], saved: list) -> T:
    """`drive`, for a `send` that must be awaited (one round trip per statement)."""
    progress = Progress(step, saved)
    statement = progress.next(None)
    while statement is not None:
        statement = progress.next(await send(statement))
    return progress.result


def text(sql: str | dict[str, str], dialect: str) -> str | None:
    return sql if isinstance(sql, str) else sql.get(dialect)


async def run(make: Callable[[], Step[T]], *, durable: bool = True) -> T:
    """Run the step `make()` in a transaction of its own, shielded from the caller's
    cancellation. `make` may be called more than once (each call a fresh run of the step:
    PostgreSQL plans its usual path first, see store.postgres)."""
    if db.sqlite_in_use():
        from railserve.store import sqlite

        return await sqlite.run(make(), durable=durable)
    from railserve.store import postgres

    return await postgres.run(make)


async def within(step: Step[T]) -> T:
    """Run `step` inside the ORM transaction the caller already holds (`db.atomic`):
    for steps that are part of a larger unit whose row locks the ORM takes (refunds)."""
    from railserve.store import inside

    return await inside.run(step)
