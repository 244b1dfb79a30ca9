"""The money steps, each written once: what it reads, decides and writes.

A step is a generator of statements (`railserve.store`): it yields each write with what
it must change, receives the answer, and decides the next one; `store.run` drives it on
SQLite or PostgreSQL inside one transaction (`store.within`: inside the one a caller
already holds, as refund opening's). Steps await nothing and touch no model query:
they are the whole of the step's database work, so a reader finds each table's writes
for each step here — start, settle, cancel, expire, a refund's opening (passengers
cancelled, seats released, the waitlist promoted) and a refund's settlement.

This module holds what every step shares: a payment's move, which is a compare-and-set
of its status (decided by `PaymentMachine`) written with its audit event.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from types import SimpleNamespace
from typing import TypeVar

from statemachine import StateMachine

from railserve.bounds import clip
from railserve.notify import notice_rows
from railserve.payment.machine import PaymentMachine
from railserve.payment.models import Actor, PaymentEvent, PaymentStatus, RefundStatus
from railserve.store import Insert, Step, Write

S = TypeVar("S", PaymentStatus, RefundStatus)


def now_utc() -> datetime:
    return datetime.now(UTC)


@lru_cache(maxsize=64)
def machine_target(source: S, event: str, machine: type[StateMachine] = PaymentMachine) -> S:
    """Where `event` takes a row in `source` (an attempt, or a refund with RefundMachine);
    TransitionNotAllowed when it may not go.

    The machines have no guards and no callbacks, so the answer depends on these alone: it
    is asked once per pair instead of a machine being built for every move (~0.2 ms each).
    """
    probe = SimpleNamespace(status=source)
    machine(model=probe, state_field="status").send(event)
    return type(source)(probe.status)


# The columns a move may change besides the status, by table (names, never values).
MOVABLE = {
    "payments": (
        "pending_lock",
        "success_lock",
        "part_success_lock",
        "failure_reason",
        "retryable",
        "completed_at",
    ),
    "refunds": (
        "settled_at",
        "failure_reason",
        "updated_at",
        "gateway_reference",
        "retried_attempts",
        "offline_reference",
        "actor",
        "operator_id",
    ),
}


@lru_cache(maxsize=32)
def move_sql(table: str, columns: tuple[str, ...]) -> str:
    """A status's compare-and-set on `table`, with the other `columns` it changes."""
    unknown = set(columns) - set(MOVABLE[table])
    if unknown:
        raise ValueError(f"a move of {table} cannot change {sorted(unknown)}")
    sets = "".join(f',"{column}"=?' for column in columns)
    return f'UPDATE "{table}" SET "status"=?{sets} WHERE "id"=? AND "status"=?'


def move(
    payment_id: int,
    source: PaymentStatus,
    event: str,
    actor: Actor,
    detail: str = "",
    **changes: object,
) -> Step[PaymentStatus | None]:
    """Move the payment by `event` if nobody moved it first, with its audit event.

    Answers the new status, or None when the row was no longer in `source` (another
    worker won the race): then nothing is written. The live notice is the trigger's
    (migration 0003). Raises TransitionNotAllowed for a move the machine refuses.
    """
    target = machine_target(source, event)
    columns = tuple(changes)
    values = [target.value, *changes.values(), payment_id, source.value]
    if not (yield Write(move_sql("payments", columns), values)):
        return None
    yield audit(payment_id, source, target, event, actor, detail)
    return target


def audit(
    payment_id: int, source: str | None, target: str, event: str, actor: Actor, detail: str
) -> Insert:
    """The payment's audit event: a move of its own, or a refund's (its status unchanged)."""
    return Insert(
        PaymentEvent(
            payment_id=payment_id,
            from_status=source,
            to_status=target,
            event=event,
            actor=actor,
            detail=clip(detail),
        )
    )


def move_booking(
    booking_id: int, sources: tuple[str, ...], target: str, **changes: object
) -> Write:
    """A booking's compare-and-set: `target` only from one of `sources` (the live notice
    is the trigger's). Answered with 1, or 0 when another change got there first."""
    sets = "".join(f',"{column}"=?' for column in changes)
    marks = ",".join("?" * len(sources))
    return Write(
        f'UPDATE "bookings" SET "status"=?{sets} WHERE "id"=? AND "status" IN ({marks})',
        [target, *changes.values(), booking_id, *sources],
    )


def tell(
    user_id: int, booking_id: int | None, kind: str, words: tuple[str, str, str], email: str
) -> Step[None]:
    """The notification and the mail of one notice: `words` = (message, subject, body)."""
    message, subject, body = words
    for row in notice_rows(user_id, booking_id, kind, message, subject, body, email):
        yield Insert(row)
