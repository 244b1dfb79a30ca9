"""Refund settlement: the gateway's verdict on a pending refund, and an operator's move of
a failed one, each with every effect it has.

The verdict: succeeded — the refund's compare-and-set (through `RefundMachine`), the audit
event, the notification and the mail; refused while attempts remain — the reason noted,
the refund left pending for the sweep to ask again, audited; refused for the last time —
the refund failed, the payment's `refunded_amount` given back (money not returned no
longer counts as refunded), audited, the passenger told. An operator's move of a failed
refund (`retry`: back to pending; `settle_offline`: succeeded, returned another way)
counts its amount as refunded again, never past the payment, and records the action.

Lock order (db.LOCK_ORDER): the payment's row first (its status is the audit's), then
the refund is read afresh and moved. A refund's status is only ever moved holding its
payment's row, so what is read there still holds when it is written. The caller logs and
counts the move (`running.refund_moved`) once the step has committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tortoise.models import Model

from railserve.bounds import clip
from railserve.display import format_money
from railserve.errors import Conflict
from railserve.payment.machine import RefundMachine
from railserve.payment.models import Actor, OperatorAction, Refund, RefundStatus
from railserve.payment.steps import audit, machine_target, move_sql, tell
from railserve.payment.steps.settle import Verdict
from railserve.store import Insert, Read, Step, Write

PENDING = RefundStatus.PENDING
FAILED = RefundStatus.FAILED
LOCK_PAYMENT = {
    "sqlite": 'SELECT "status" FROM "payments" WHERE "id"=?',
    "postgres": 'SELECT "status" FROM "payments" WHERE "id"=? FOR UPDATE',
}
REFUND_NOW = 'SELECT "status","attempts","retried_attempts" FROM "refunds" WHERE "id"=?'
REFUSED = 'UPDATE "refunds" SET "failure_reason"=?,"updated_at"=? WHERE "id"=? AND "status"=?'
GIVE_BACK = 'UPDATE "payments" SET "refunded_amount"="refunded_amount"-? WHERE "id"=?'
# Counted as refunded again: the database refuses it past the amount paid.
COUNT_AGAIN = (
    'UPDATE "payments" SET "refunded_amount"="refunded_amount"+? '
    'WHERE "id"=? AND "refunded_amount"+?<="amount"'
)


@dataclass(frozen=True)
class RefundOutcome:
    applied: bool
    target: RefundStatus | None = None  # None when applied: refused, left pending to retry


def move_refund(refund_pk: int, source: RefundStatus, event: str, **changes: object) -> Step:
    """The refund's compare-and-set by `event`; its new status. Run holding its payment's
    row, under which it was read in `source`: it cannot have moved since (Conflict if the
    lock order were ever broken). The card's live notice is the trigger's (migration 0003).
    """
    target = machine_target(source, event, RefundMachine)
    values = [target.value, *changes.values(), refund_pk, source.value]
    moved = Conflict("This refund changed meanwhile. Reload and try again.")
    yield Write(move_sql("refunds", tuple(changes)), values, expect=1, otherwise=moved)
    return target


def noted(refund: Refund, payment_status: str, event: str, actor: Actor, detail: str) -> Insert:
    """The payment's audit event of a move of its refund (its own status unchanged)."""
    return audit(refund.payment_id, payment_status, payment_status, event, actor, detail)


def tell_owner(refund: Refund, kind: str, message: str) -> Step[None]:
    """`refund` as read with its payment's booking and user."""
    payment = refund.payment
    pnr = payment.booking.pnr
    words = (f"Booking {pnr}: {message}", f"Booking {pnr}: refund {refund.refund_id}", message)
    yield from tell(payment.user_id, payment.booking_id, kind, words, payment.user.email)


def _locked(refund: Refund) -> Step[tuple[str, RefundStatus, int, int | None]]:
    """The payment's status, read holding its row, then the refund's status, attempts and
    the attempts made before an operator's last retry."""
    ((payment_status,),) = yield Read(LOCK_PAYMENT, [refund.payment_id])
    ((status, attempts, retried),) = yield Read(REFUND_NOW, [refund.id])
    return payment_status, RefundStatus(status), attempts, retried


def settle_refund(
    refund: Refund,
    verdict: Verdict,
    attempts_allowed: int,
    now: datetime,
    record: Model | None = None,
    reference: str | None = None,
) -> Step[RefundOutcome]:
    """`refund` as read with its payment's booking and user; `reference` the gateway's;
    `record` is written whatever happens (a webhook's event id). Not applied when the
    refund was no longer pending."""
    if record is not None:
        yield Insert(record)
    if refund.status != PENDING:
        return RefundOutcome(False)
    payment_status, status, attempts, retried = yield from _locked(refund)
    if status != PENDING:
        return RefundOutcome(False)
    refund_id, actor = refund.refund_id, verdict.actor
    money = format_money(refund.amount, refund.currency)
    if verdict.succeeded:
        changes: dict = {"settled_at": now, "failure_reason": None, "updated_at": now}
        if reference:
            changes["gateway_reference"] = reference
        target = yield from move_refund(refund.id, PENDING, "succeed", **changes)
        detail = f"{refund_id}: {money} {verdict.detail}"
        yield noted(refund, payment_status, "refund_succeeded", actor, detail)
        yield from tell_owner(
            refund, "refund_done", f"Refund {refund_id} of {money} was paid back."
        )
        return RefundOutcome(True, target)
    why = (verdict.reason or "refused by the gateway")[:200]
    if attempts - (retried or 0) < attempts_allowed:  # Refund.tries
        yield Write(REFUSED, [why, now, refund.id, PENDING.value])
        detail = f"{refund_id}: {why}; will retry"
        yield noted(refund, payment_status, "refund_refused", actor, detail)
        return RefundOutcome(True)
    failed = {"failure_reason": why, "settled_at": now, "updated_at": now}
    target = yield from move_refund(refund.id, PENDING, "fail", **failed)
    yield Write(GIVE_BACK, [refund.amount, refund.payment_id], expect=1)
    yield noted(refund, payment_status, "refund_failed", actor, f"{refund_id}: {why}")
    message = (
        f"Refund {refund_id} of {money} could not be paid back ({why}). Our team will "
        "contact you to return it another way."
    )
    yield from tell_owner(refund, "refund_failed", message)
    return RefundOutcome(True, target)


@dataclass(frozen=True)
class OperatorMove:
    """An operator's move of a failed refund: the refund machine's `event`, the refund's
    other `changes`, and what the audit, the console's record and the passenger (when
    `notice` is given) are told."""

    event: str
    operator_id: int
    reason: str
    audit_event: str
    audit_detail: str
    action: str
    action_detail: str
    changes: dict
    notice: str | None = None


def move_failed(refund: Refund, move: OperatorMove) -> Step[RefundStatus]:
    """`refund` (read with its payment's booking and user) moved on from `failed`, its
    amount counted as refunded again; Conflict (nothing written) when it may not be."""
    payment_status, status, attempts, _retried = yield from _locked(refund)
    if status != FAILED:
        raise Conflict(f"Only a failed refund can be retried or settled; this one is {status}.")
    counted = [refund.amount, refund.payment_id, refund.amount]
    if not (yield Write(COUNT_AGAIN, counted)):
        raise Conflict(
            "The payment has been refunded meanwhile: this refund would exceed what was paid."
        )
    # A retry starts a fresh count of gateway attempts (see Refund.tries).
    changes = {"failure_reason": None, "retried_attempts": attempts, **move.changes}
    target = yield from move_refund(refund.id, FAILED, move.event, **changes)
    yield noted(refund, payment_status, move.audit_event, Actor.OPERATOR, move.audit_detail)
    yield Insert(
        OperatorAction(
            operator_id=move.operator_id,
            action=move.action,
            transaction_id=refund.payment.transaction_id,
            reason=move.reason,
            detail=clip(move.action_detail),
        )
    )
    if move.notice is not None:
        yield from tell_owner(refund, "refund_done", move.notice)
    return target
