"""Start, settle, cancel and refund payment attempts: the order of steps and the transaction.

Every transition is a compare-and-set on the payment row, written with its audit event
and all of its effects in one transaction (`db.atomic`). The gateway is never awaited
inside a transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from types import SimpleNamespace

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q, Subquery
from tortoise.functions import Min
from tortoise.models import Model
from tortoise.queryset import QuerySet

from railserve import batch, db, running
from railserve.errors import Conflict, Invalid, NotFound
from railserve.models import Booking, BookingStatus, Train
from railserve.notify import notice_rows, notify
from railserve.payment.forms import idempotency_key, parse_payment
from railserve.payment.machine import PaymentMachine
from railserve.payment.models import Actor, Payment, PaymentEvent, PaymentStatus
from railserve.payment.providers import ChargeRequest, GatewayError
from railserve.payment.providers.router import Gateways
from railserve.prepared import PreparedRead
from railserve.seats import confirm_or_waitlist, confirmation_notice, move_booking

log = logging.getLogger(__name__)

TXN_ALPHABET = string.ascii_uppercase + string.digits
STILL_PAYABLE = 'UPDATE "bookings" SET "updated_at"=? WHERE "id"=? AND "status"=?'
LATE_REFUND_MESSAGE = "Payment received after the booking expired: refunded in full"


def new_transaction_id() -> str:
    return "TXN" + "".join(secrets.choice(TXN_ALPHABET) for _ in range(16))


def now_utc() -> datetime:
    return datetime.now(UTC)


class AttemptPending(Conflict):
    """A new attempt while another of the same booking is still pending."""

    def __init__(self, payment: Payment) -> None:
        super().__init__(
            f"Payment {payment.transaction_id} for this booking is still being processed."
        )
        self.payment = payment


@lru_cache(maxsize=64)
def machine_target(source: PaymentStatus, event: str) -> PaymentStatus:
    """Where `event` takes an attempt in `source`; TransitionNotAllowed when it may not go.

    The machine has no guards and no callbacks, so its answer depends on these two alone:
    it is asked once per pair instead of being built for every move (~0.2 ms each).
    """
    probe = SimpleNamespace(status=source)
    PaymentMachine(model=probe, state_field="status").send(event)
    return PaymentStatus(probe.status)


async def transition(
    payment: Payment, event: str, actor: Actor, detail: str = "", **changes: object
) -> bool:
    """Move `payment` by `event` if the machine allows it and nobody moved it first.

    Raises TransitionNotAllowed for a move the machine refuses; returns False when the
    row changed under us (another worker won the race), in which case nothing is written.
    Must run inside a transaction, with the effects of the move.
    """
    source = PaymentStatus(payment.status)
    target = machine_target(source, event)
    payment.status = target
    moved = await Payment.filter(id=payment.id, status=source).update(status=target, **changes)
    if not moved:
        payment.status = source
        return False
    for name, value in changes.items():
        setattr(payment, name, value)
    await PaymentEvent.create(
        payment_id=payment.id,
        from_status=source,
        to_status=target,
        event=event,
        actor=actor,
        detail=detail[:300],
    )
    running.payment_moved(payment, source, target, actor)
    # No announcement here: a trigger on `payments` writes the live notice (migration 0003).
    return True


_OWNED_BOOKING = PreparedRead(
    Booking,
    lambda booking_id, user_id: Booking.filter(id=booking_id, user_id=user_id).select_related(
        "train"
    ),
)


async def owned_booking(user_id: int, booking_id: int) -> Booking:
    found = await _OWNED_BOOKING.objects(booking_id, user_id)
    if not found:
        raise NotFound("No such booking.")
    return found[0]


# The status poll's reads, their SQL built once (railserve/prepared.py): the poll is the
# hottest request and building the query cost more than running it.
_STATUS_SUMMARY = PreparedRead(
    Payment,
    lambda transaction_id, user_id: Payment.filter(
        transaction_id=transaction_id, user_id=user_id
    ).values(
        "transaction_id",
        "status",
        "booking_id",
        "amount",
        "currency",
        "method",
        "failure_reason",
        "refunded_amount",
        "gateway",
        booking_status="booking__status",
    ),
)


async def status_summary(user_id: int, transaction_id: str) -> dict:
    """What the JSON status poll needs, in one query and without building model objects.

    Values are the columns as stored: statuses and the method are their plain strings.
    """
    rows = await _STATUS_SUMMARY.rows(transaction_id, user_id)
    if not rows:
        raise NotFound("No such payment.")
    return rows[0]


async def owned_payment(user_id: int, transaction_id: str) -> Payment:
    payment = await Payment.get_or_none(transaction_id=transaction_id, user_id=user_id)
    if payment is None:
        raise NotFound("No such payment.")
    return payment


# What the status card shows of the attempt, its booking and the train, and what the full
# page adds: only these columns, so the card does not parse timestamps it never shows.
_CARD_COLUMNS: dict[type[Model], tuple[str, ...]] = {
    Payment: (
        "id",
        "transaction_id",
        "booking_id",
        "user_id",
        "method",
        "amount",
        "currency",
        "status",
        "failure_reason",
        "instrument",
        "refunded_amount",
    ),
    Booking: (
        "id",
        "pnr",
        "user_id",
        "train_id",
        "status",
        "amount",
        "currency",
        "passengers",
        "cancelled_positions",
        "passenger_count",
        "created_at",
        "paid_at",
    ),
    Train: ("id", "number", "name"),
}
_PAGE_COLUMNS = {
    **_CARD_COLUMNS,
    Train: (*_CARD_COLUMNS[Train], "origin", "destination", "departs_at"),
}
_PATHS = {Payment: "", Booking: "booking__", Train: "booking__train__"}


def _joined_read(columns: dict[type[Model], tuple[str, ...]]) -> PreparedRead:
    paths = [_PATHS[model] + column for model, names in columns.items() for column in names]
    return PreparedRead(
        Payment,
        lambda transaction_id, user_id: Payment.filter(
            transaction_id=transaction_id, user_id=user_id
        ).values(*paths),
    )


_STATUS_READS = {False: _joined_read(_CARD_COLUMNS), True: _joined_read(_PAGE_COLUMNS)}


def _part(model: type[Model], columns: tuple[str, ...], row: dict) -> Model:
    """One model of the joined row, converted by its own fields (a partial instance)."""
    prefix = _PATHS[model]
    return model._init_from_db(**{column: row[prefix + column] for column in columns})


async def owned_payment_with_booking(
    user_id: int, transaction_id: str, *, page: bool = False
) -> Payment:
    """The attempt with its booking and train: the status card (or `page`), one query.

    The instances hold only the columns the card or the page shows (`_CARD_COLUMNS`,
    `_PAGE_COLUMNS`); they are for reading, never for saving.
    """
    rows = await _STATUS_READS[page].rows(transaction_id, user_id)
    if not rows:
        raise NotFound("No such payment.")
    columns = _PAGE_COLUMNS if page else _CARD_COLUMNS
    payment, booking, train = (_part(model, names, rows[0]) for model, names in columns.items())
    booking.train = train
    payment.booking = booking
    return payment


def payable_or_raise(booking: Booking) -> None:
    if booking.status in (BookingStatus.CONFIRMED, BookingStatus.WAITLISTED):
        raise Conflict("This booking is already paid.")
    if booking.status != BookingStatus.PENDING_PAYMENT:
        raise Conflict(
            f"This booking is {booking.status.value.replace('_', ' ')} and cannot be paid."
        )


# At most two rows: the key is unique per user, the pending lock per booking.
def _key_or_pending(user_id: int, key: str, booking_id: int) -> QuerySet[Payment]:
    return Payment.filter(Q(user_id=user_id, idempotency_key=key) | Q(pending_lock=booking_id))


_KEY_OR_PENDING = PreparedRead(Payment, _key_or_pending)
# The post's first read: the booking with its train, and whether any attempt holds the
# key or is pending for the booking (almost never: then they are read in full).
_BOOKING_TO_PAY = PreparedRead(
    Booking,
    lambda user_id, key, pending_booking_id, booking_id, owner_id: (
        Booking.filter(id=booking_id, user_id=owner_id)
        .annotate(
            attempt=Subquery(
                _key_or_pending(user_id, key, pending_booking_id)
                .annotate(first=Min("id"))
                .values("first")
            )
        )
        .select_related("train")
    ),
)


async def _booking_to_pay(
    user_id: int, booking_id: int, form: Mapping[str, str]
) -> tuple[Booking, str, list[Payment]]:
    """The passenger's booking, the form's idempotency key, and the attempts that hold the
    key or are pending for the booking; one query when there are none (the usual case)."""
    try:
        key = idempotency_key(form)
    except Invalid:
        await owned_booking(user_id, booking_id)  # another's booking is a 404 first
        raise
    found = await _BOOKING_TO_PAY.objects(user_id, key, booking_id, booking_id, user_id)
    if not found:
        raise NotFound("No such booking.")
    booking = found[0]
    if booking.attempt is None:
        return booking, key, []
    return booking, key, await _KEY_OR_PENDING.objects(user_id, key, booking.id)


async def start_attempt(
    gateways: Gateways, user_id: int, booking_id: int, form: Mapping[str, str]
) -> tuple[Payment, bool]:
    """Create a pending attempt and hand it to the gateway its method is routed to;
    (attempt, created).

    Posting the same idempotency key again gives back the attempt it created. When no
    gateway can take the method, Unavailable (503) is raised before anything is written.
    """
    # With the booking, both questions: did this key already start an attempt, and is
    # another attempt of this booking still pending?
    booking, key, found = await _booking_to_pay(user_id, booking_id, form)
    if existing := next(
        (p for p in found if p.user_id == user_id and p.idempotency_key == key), None
    ):
        return _same_booking(existing, booking.id), False
    payable_or_raise(booking)
    request = parse_payment(form, booking.amount, now_utc(), booking.currency)
    if found:
        # Perhaps this very key, posted at the same moment: answer with its attempt.
        return await _lost_race(user_id, booking.id, key), False
    provider = gateways.route(request.method)

    attempt = Payment(
        transaction_id=new_transaction_id(),
        booking_id=booking.id,
        user_id=user_id,
        method=request.method,
        amount=booking.amount,
        currency=booking.currency,
        gateway=provider,
        instrument=request.masked_instrument,
        idempotency_key=key,
        pending_lock=booking.id,
    )
    started = PaymentEvent(
        from_status=None,
        to_status=PaymentStatus.PENDING,
        event="start",
        actor=Actor.USER,
        detail=f"{request.method.label} {request.masked_instrument}",
    )

    # The booking was read before this transaction: an attempt that succeeded (or a
    # cancellation) since then must stop this one, or the gateway would be asked to take
    # the money twice. Inserted first, updated second: payments before bookings.
    async def create() -> Payment:
        await attempt.save(force_create=True)
        if not await Booking.filter(id=booking.id, status=BookingStatus.PENDING_PAYMENT).update(
            updated_at=now_utc()
        ):
            raise _BookingMoved
        started.payment_id = attempt.id
        await started.save(force_create=True)
        return attempt

    async def create_in_one_call() -> Payment:  # SQLite: the same statements, one round trip
        payment_row, event_row = batch.Insert(attempt), batch.Insert(started)
        now = now_utc()

        def work(unit: batch.Unit) -> Payment:
            payment_id = unit.insert(payment_row)
            if not unit.execute(
                STILL_PAYABLE, [now, booking.id, BookingStatus.PENDING_PAYMENT.value]
            ):
                raise _BookingMoved
            event_row.set("payment_id", payment_id)
            unit.insert(event_row)
            return attempt

        return await batch.run(work)

    async def create_and_hand_over() -> Payment | None:
        try:
            payment = await (create_in_one_call() if db.sqlite_in_use() else db.atomic(create))
        except (IntegrityError, _BookingMoved):
            return None  # lost a race; the caller finds out to whom
        running.payment_moved(payment, None, payment.status, Actor.USER)
        charge = ChargeRequest(
            payment.transaction_id,
            payment.amount,
            payment.currency,
            request.method,
            request.instrument,
        )
        try:
            await gateways.charge_with(provider, charge)
        except GatewayError as error:
            log.warning("%s could not take charge %s: %r", provider, payment.transaction_id, error)
            await settle(payment.transaction_id, False, error.message, True)
            return await Payment.get(id=payment.id)
        return payment

    # One shielded unit from the commit to the gateway's hand-over: a client that hangs
    # up in between must not leave an attempt the gateway never heard of (it would stay
    # pending, blocking every retry, until the payment timeout).
    payment = await asyncio.shield(asyncio.ensure_future(create_and_hand_over()))
    if payment is None:
        # The same key posted twice at once, another attempt started first, or the
        # booking was paid or cancelled meanwhile.
        return await _lost_race(user_id, booking.id, key), False
    return payment, True


async def _lost_race(user_id: int, booking_id: int, key: str) -> Payment:
    """Another request got there first: its attempt if it carried this key, else why not."""
    if existing := await _attempt_for_key(user_id, booking_id, key):
        return existing
    if pending := await Payment.get_or_none(pending_lock=booking_id):
        raise AttemptPending(pending)
    payable_or_raise(await Booking.get(id=booking_id))
    raise Conflict("This booking changed while you were paying. Reload and try again.")


async def _attempt_for_key(user_id: int, booking_id: int, key: str) -> Payment | None:
    payment = await Payment.get_or_none(user_id=user_id, idempotency_key=key)
    return None if payment is None else _same_booking(payment, booking_id)


def _same_booking(payment: Payment, booking_id: int) -> Payment:
    if payment.booking_id != booking_id:
        raise Conflict("This payment form belongs to another booking. Reload the page.")
    return payment


@dataclass(frozen=True)
class Settlement:
    payment: Payment
    applied: bool
    needs_refund: bool = False


async def settle(
    transaction_id: str,
    succeeded: bool,
    reason: str | None = None,
    retryable: bool | None = None,
    *,
    actor: Actor = Actor.GATEWAY,
    detail: str = "",
    record: Model | None = None,
    loaded: Payment | None = None,
    receipt: Model | None = None,
) -> Settlement:
    """Apply the gateway's verdict on a pending attempt, with all its effects, atomically.

    `record` is written in the transaction whatever it decides (the event id of a webhook).
    `loaded`: the attempt as the caller just read it with its booking, train and user
    (`SETTLEMENT_JOINS`), which spares the read below. `receipt`: a row the one-call path
    writes with the settlement when it applies, and then only (the webhook's log entry of
    that answer; the caller writes it otherwise).
    """
    now = now_utc()
    # One read for everything the settlement needs (the booking, its train, the passenger's
    # address for the notice and the mail), before the transaction so that it holds its
    # locks for less time. The read decides nothing: the compare-and-set updates of the
    # payment and the booking do, and a row that moved since makes them refuse.
    payment = loaded or (
        await Payment.filter(transaction_id=transaction_id).select_related(*SETTLEMENT_JOINS).get()
    )
    if payment.status != PaymentStatus.PENDING and record is None:
        return Settlement(payment, False)
    if db.sqlite_in_use() and payment.status == PaymentStatus.PENDING:
        verdict = Verdict(succeeded, reason, retryable, actor, detail, now)
        # A full train or a booking that moved meanwhile: rolled back, the general path.
        with contextlib.suppress(batch.Unusual):
            return await _settle_in_one_call(payment, verdict, record, receipt)

    async def work() -> Settlement:
        if record is not None:
            await record.save(force_create=True)
        if payment.status != PaymentStatus.PENDING:
            return Settlement(payment, False)
        if not succeeded:
            applied = await transition(
                payment,
                "fail",
                actor,
                detail or (reason or ""),
                pending_lock=None,
                failure_reason=reason or "Payment failed",
                retryable=retryable,
                completed_at=now,
            )
            return Settlement(payment, applied)
        applied = await transition(
            payment,
            "succeed",
            actor,
            detail or "payment captured",
            pending_lock=None,
            success_lock=payment.booking_id,
            completed_at=now,
        )
        if not applied:
            return Settlement(payment, False)
        booking = payment.booking
        outcome = await confirm_or_waitlist(booking, booking.train, payment.user.email)
        return Settlement(payment, True, needs_refund=outcome is None)

    return await db.atomic(work)


SETTLEMENT_JOINS = ("booking__train", "user")
PAYMENT_SUCCEEDED = (
    'UPDATE "payments" SET "status"=?,"pending_lock"=NULL,"success_lock"=?,"completed_at"=? '
    'WHERE "id"=? AND "status"=?'
)
PAYMENT_FAILED = (
    'UPDATE "payments" SET "status"=?,"pending_lock"=NULL,"failure_reason"=?,"retryable"=?,'
    '"completed_at"=? WHERE "id"=? AND "status"=?'
)
TAKE_SEATS = 'UPDATE "trains" SET "seats_left"="seats_left"-? WHERE "id"=? AND "seats_left">=?'
CONFIRM_BOOKING = 'UPDATE "bookings" SET "status"=?,"paid_at"=? WHERE "id"=? AND "status" IN (?,?)'


@dataclass(frozen=True)
class Verdict:
    succeeded: bool
    reason: str | None
    retryable: bool | None
    actor: Actor
    detail: str
    now: datetime


async def _settle_in_one_call(
    payment: Payment, verdict: Verdict, record: Model | None, receipt: Model | None
) -> Settlement:
    """SQLite: the usual settlement (the seats are there, the booking still payable) as one
    call on aiosqlite's thread: the statements of `transition`, `confirm_or_waitlist` and
    `notify`, in their order and with their compare-and-sets. Anything else raises
    batch.Unusual, rolled back, for the general path."""
    pending = PaymentStatus.PENDING
    booking, train = payment.booking, payment.booking.train
    rows = [batch.Insert(record)] if record is not None else []
    if verdict.succeeded:
        event, detail = "succeed", verdict.detail or "payment captured"
        changes = {"pending_lock": None, "success_lock": booking.id, "completed_at": verdict.now}
        target = machine_target(pending, event)
        move = [
            PAYMENT_SUCCEEDED,
            [target.value, booking.id, verdict.now, payment.id, pending.value],
        ]
        message, subject, body = confirmation_notice(booking, train)
        notice = notice_rows(
            booking.user_id, booking.id, "confirmation", message, subject, body, payment.user.email
        )
    else:
        event, detail = "fail", verdict.detail or (verdict.reason or "")
        failure = verdict.reason or "Payment failed"
        changes = {
            "pending_lock": None,
            "failure_reason": failure,
            "retryable": verdict.retryable,
            "completed_at": verdict.now,
        }
        target = machine_target(pending, event)
        move = [
            PAYMENT_FAILED,
            [target.value, failure, verdict.retryable, verdict.now, payment.id, pending.value],
        ]
        notice = ()
    audit = batch.Insert(
        PaymentEvent(
            payment_id=payment.id,
            from_status=pending,
            to_status=target,
            event=event,
            actor=verdict.actor,
            detail=detail[:300],
        )
    )
    applied_rows = [batch.Insert(row) for row in notice]
    if receipt is not None:
        applied_rows.append(batch.Insert(receipt))
    seats = [booking.passenger_count, train.id, booking.passenger_count]
    payable = [BookingStatus.PENDING_PAYMENT.value, BookingStatus.EXPIRED.value]

    def work(unit: batch.Unit) -> datetime | bool:
        for row in rows:
            unit.insert(row)
        if not unit.execute(*move):
            return False  # another worker settled it first
        unit.insert(audit)
        if not verdict.succeeded:
            for row in applied_rows:
                unit.insert(row)
            return True
        if not unit.execute(TAKE_SEATS, seats):
            raise batch.Unusual  # full: the waitlist, under the train's lock
        paid_at = datetime.now(UTC)  # read once the seats are ours, as confirm_or_waitlist does
        if not unit.execute(
            CONFIRM_BOOKING, [BookingStatus.CONFIRMED.value, paid_at, booking.id, *payable]
        ):
            raise batch.Unusual  # moved meanwhile: seats back, refund
        for row in applied_rows:
            unit.insert(row)
        return paid_at

    outcome = await batch.run(work)
    if outcome is False:
        return Settlement(payment, False)
    payment.status = target
    for name, value in changes.items():
        setattr(payment, name, value)
    running.payment_moved(payment, pending, target, verdict.actor)
    if verdict.succeeded:
        booking.status = BookingStatus.CONFIRMED
        booking.paid_at = outcome
    return Settlement(payment, True)


async def cancel_attempt(user_id: int, transaction_id: str) -> Payment:
    """The passenger stops a pending attempt."""
    payment = await owned_payment(user_id, transaction_id)
    if payment.status != PaymentStatus.PENDING:
        raise Conflict(f"This payment is already {payment.status.value} and cannot be cancelled.")
    cancelled = await cancel_pending(payment.id, "Cancelled by you", actor=Actor.USER)
    if not cancelled:
        payment = await Payment.get(id=payment.id)
        raise Conflict(f"This payment is already {payment.status.value} and cannot be cancelled.")
    return await Payment.get(id=payment.id)


async def cancel_pending(payment_id: int, reason: str, *, actor: Actor) -> bool:
    now = now_utc()

    async def work() -> bool:
        payment = await Payment.get(id=payment_id)
        if payment.status != PaymentStatus.PENDING:
            return False
        return await cancel_transition(payment, reason, actor, retryable=True, now=now)

    return await db.atomic(work)


async def cancel_transition(
    payment: Payment, reason: str, actor: Actor, *, retryable: bool, now: datetime
) -> bool:
    """pending → cancelled, freeing the booking for another attempt (inside a transaction)."""
    return await transition(
        payment,
        "cancel",
        actor,
        reason,
        pending_lock=None,
        failure_reason=reason,
        retryable=retryable,
        completed_at=now,
    )


class _BookingMoved(Exception):
    """Raised inside a transaction to roll it back when the booking changed under us."""


async def cancel_unpaid(
    booking: Booking, *, actor: Actor = Actor.USER, why: str | None = None
) -> str:
    """Cancel a booking before payment, with its pending attempts: free of charge."""

    async def work() -> None:
        # Payments before bookings, in every transaction: one lock order, no deadlocks.
        now = now_utc()
        for payment in await Payment.filter(booking_id=booking.id, status=PaymentStatus.PENDING):
            await cancel_transition(
                payment, why or "Booking cancelled", actor, retryable=False, now=now
            )
        if not await move_booking(
            booking, (BookingStatus.PENDING_PAYMENT,), BookingStatus.CANCELLED
        ):
            raise _BookingMoved
        await notify(
            booking.user_id,
            booking.id,
            "cancellation",
            f"Booking {booking.pnr} cancelled before payment." + (f" {why}" if why else ""),
            subject=f"Booking {booking.pnr} cancelled",
            body=f"Your unpaid booking {booking.pnr} was cancelled. Nothing was charged."
            + (f" {why}" if why else ""),
        )

    try:
        await db.atomic(work)
    except _BookingMoved:
        raise Conflict(
            "This booking changed meanwhile (was it just paid?). Reload and try again."
        ) from None
    return f"Booking {booking.pnr} cancelled."
