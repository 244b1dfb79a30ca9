"""Start, settle and cancel payment attempts: the order of steps around the transaction.

What each transaction reads, decides and writes is its step, written once in
railserve/payment/steps/ and run by `store.run` on either database: every transition is a
compare-and-set on the payment row, written with its audit event and all of its effects
in one transaction. This module reads what a step needs before it, calls the gateway
after it (never inside a transaction), and turns the step's answer into the domain's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from tortoise.exceptions import DoesNotExist, IntegrityError
from tortoise.expressions import Q, Subquery
from tortoise.functions import Min
from tortoise.models import Model
from tortoise.queryset import QuerySet

from railserve import running, store
from railserve.bounds import TRANSACTION_ID
from railserve.config import Settings
from railserve.errors import Conflict, Invalid, NotFound
from railserve.models import Booking, BookingStatus, Train, closed_reason
from railserve.payment import parts
from railserve.payment.forms import idempotency_key, parse_payment
from railserve.payment.models import Actor, Payment, PaymentEvent, PaymentStatus
from railserve.payment.providers import ChargeRequest, GatewayError
from railserve.payment.providers.router import Gateways
from railserve.payment.steps import now_utc
from railserve.payment.steps import settle as settling
from railserve.payment.steps.start import start
from railserve.prepared import PreparedRead

log = logging.getLogger(__name__)

LATE_REFUND_MESSAGE = "Payment received after the booking expired: refunded in full"


def new_transaction_id() -> str:
    return TRANSACTION_ID.new()


class AttemptPending(Conflict):
    """A new attempt while another of the same booking is still pending."""

    def __init__(self, payment: Payment) -> None:
        super().__init__(
            f"Payment {payment.transaction_id} for this booking is still being processed."
        )
        self.payment = payment


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


# The pay page's read: the booking with its train, and whether it has any attempt (not on
# a first visit: then its attempts are not read at all).
_BOOKING_TO_SHOW = PreparedRead(
    Booking,
    lambda attempts_of, booking_id, user_id: (
        Booking.filter(id=booking_id, user_id=user_id)
        .annotate(
            attempt=Subquery(
                Payment.filter(booking_id=attempts_of).annotate(first=Min("id")).values("first")
            )
        )
        .select_related("train")
    ),
)


async def booking_with_attempts(user_id: int, booking_id: int) -> tuple[Booking, list[Payment]]:
    """The passenger's booking (with its train) and its attempts, newest first."""
    found = await _BOOKING_TO_SHOW.objects(booking_id, booking_id, user_id)
    if not found:
        raise NotFound("No such booking.")
    booking = found[0]
    if booking.attempt is None:
        return booking, []
    return booking, await Payment.filter(booking_id=booking.id).order_by("-id")


async def owned_payment(user_id: int, transaction_id: str) -> Payment:
    payment = await Payment.get_or_none(transaction_id=transaction_id, user_id=user_id)
    if payment is None:
        raise NotFound("No such payment.")
    return payment


def open_or_raise(booking: Booking, now: datetime) -> None:
    """Booking closes when the train departs or is cancelled, also once the sweep has
    expired or cancelled the booking: the train's message, and nothing is charged.
    (Every caller but `_lost_race` reads the booking with its train joined.)"""
    if isinstance(train := booking.train, Train) and (why := closed_reason(train, now)):
        raise Conflict(why)


def payable_or_raise(booking: Booking) -> None:
    if booking.status in BookingStatus.PAID:
        raise Conflict("This booking is already paid.")
    open_or_raise(booking, now_utc())
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
    gateways: Gateways,
    user_id: int,
    booking_id: int,
    form: Mapping[str, str],
    settings: Settings | None = None,
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
    now = now_utc()
    if booking.status not in (BookingStatus.CONFIRMED, BookingStatus.WAITLISTED):
        open_or_raise(booking, now)  # a later part is due before departure anyway
    # What this attempt pays: the whole amount, a plan's first part, or the next part due.
    due = await parts.what_to_pay(settings or Settings(), booking, form.get("plan"), now)
    request = parse_payment(form, due.amount, now, booking.currency)
    if found:
        # Perhaps this very key, posted at the same moment: answer with its attempt.
        return await _lost_race(user_id, booking.id, key), False
    provider = gateways.route(request.method)

    attempt = Payment(
        transaction_id=new_transaction_id(),
        booking_id=booking.id,
        user_id=user_id,
        method=request.method,
        amount=due.amount,
        currency=booking.currency,
        gateway=provider,
        part_id=due.part_id,
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

    charge = ChargeRequest(
        attempt.transaction_id, attempt.amount, attempt.currency, request.method, request.instrument
    )
    # A simulator's record of the charge commits with the attempt (no transaction of its own).
    booked = gateways.ledger_row(provider, charge)
    charge = replace(charge, recorded=booked is not None)

    async def create_and_hand_over() -> Payment | None:
        try:
            now = now_utc()
            payment = await store.run(
                lambda: start(attempt, started, now, due.plan, due.parts, booked)
            )
        except IntegrityError:
            return None  # the same key, or another attempt pending: the caller finds out
        if payment is None:
            return None  # the booking was paid or cancelled meanwhile
        running.payment_moved(payment, None, payment.status, Actor.USER)
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


SETTLEMENT_JOINS = ("booking__train", "user")
_TO_SETTLE = PreparedRead(
    Payment,
    lambda transaction_id: Payment.filter(transaction_id=transaction_id).select_related(
        *SETTLEMENT_JOINS
    ),
)


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
    """Apply the gateway's verdict on a pending attempt, with all its effects, atomically
    (steps/settle.py). Other modules enter through `settlement.settle_and_follow_up`.

    `record` is written in the transaction whatever it decides (the event id of a webhook).
    `loaded`: the attempt as the caller just read it with its booking, train and user
    (`SETTLEMENT_JOINS`), which spares the read below. `receipt`: a row written with the
    settlement when it applies, and then only (the webhook's log entry of that answer; the
    caller writes it otherwise).
    """
    # One read for everything the settlement needs (the booking, its train, the passenger's
    # address for the notice and the mail), before the transaction so that it holds its
    # locks for less time. The read decides nothing: the compare-and-set updates of the
    # payment and the booking do, and a row that moved since makes them refuse.
    if loaded is None:
        found = await _TO_SETTLE.objects(transaction_id)
        if not found:
            raise DoesNotExist(Payment)
        loaded = found[0]
    payment = loaded
    if payment.status != PaymentStatus.PENDING and record is None:
        return Settlement(payment, False)
    verdict = settling.Verdict(succeeded, reason, retryable, actor, detail)
    try:
        outcome = await store.run(lambda: settling.settle(payment, verdict, record, receipt))
    except settling.SeatsGone:
        outcome = await store.run(
            lambda: settling.settle(payment, verdict, record, receipt, seats_first=True)
        )
    if outcome.applied:
        payment.status = outcome.status
        for name, value in (outcome.changes or {}).items():
            setattr(payment, name, value)
        if outcome.booking_status is not None:
            payment.booking.status = outcome.booking_status
            payment.booking.paid_at = outcome.paid_at
        running.payment_moved(payment, PaymentStatus.PENDING, outcome.status, actor)
    return Settlement(payment, outcome.applied, needs_refund=outcome.needs_refund)
