"""The money steps, each written once: what it reads, decides and writes.

A step is a generator of statements (`railserve.store`): it yields each write with what
it must change, receives the answer, and decides the next one; `store.run` drives it on
SQLite or PostgreSQL inside one transaction. Steps await nothing and touch no model query:
they are the whole of the step's database work, so a reader finds each table's writes
for each step here — start, settle, cancel, expire.

This module holds what every step shares: a payment's move, which is a compare-and-set
of its status (decided by `PaymentMachine`) written with its audit event.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from types import SimpleNamespace

from railserve.notify import notice_rows
from railserve.payment.machine import PaymentMachine
from railserve.payment.models import Actor, PaymentEvent, PaymentStatus
from railserve.store import Insert, Step, Write


def now_utc() -> datetime:
    return datetime.now(UTC)


@lru_cache(maxsize=64)
def machine_target(source: PaymentStatus, event: str) -> PaymentStatus:
    """Where `event` takes an attempt in `source`; TransitionNotAllowed when it may not go.

    The machine has no guards and no callbacks, so its answer depends on these two alone:
    it is asked once per pair instead of being built for every move (~0.2 ms each).
    """
    probe = SimpleNamespace(status=source)
    PaymentMachine(model=probe, state_field="status").send(event)
    return PaymentStatus(probe.status)


# The columns a move may change besides the status (names of `payments`, never values).
MOVABLE = (
    "pending_lock",
    "success_lock",
    "part_success_lock",
    "failure_reason",
    "retryable",
    "completed_at",
)


@lru_cache(maxsize=32)
def _move_sql(columns: tuple[str, ...]) -> str:
    unknown = set(columns) - set(MOVABLE)
    if unknown:
        raise ValueError(f"a payment move cannot change {sorted(unknown)}")
    sets = "".join(f',"{column}"=?' for column in columns)
    return f'UPDATE "payments" SET "status"=?{sets} WHERE "id"=? AND "status"=?'


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
    if not (yield Write(_move_sql(columns), values)):
        return None
    yield Insert(
        PaymentEvent(
            payment_id=payment_id,
            from_status=source,
            to_status=target,
            event=event,
            actor=actor,
            detail=detail[:300],
        )
    )
    return target


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
