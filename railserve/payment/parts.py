"""Paying in parts, the booking's side: what a booking owes now and on which plan.

`plans.py` holds the plans and the pure split; this module applies them to a booking as
stored (its plan, its `payment_parts` rows), for the pay page, the process post, the
status JSON, the profile and the receipt. The writes are the steps' (steps/start.py,
steps/settle.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import lru_cache

from railserve.config import Settings
from railserve.errors import Conflict, Invalid
from railserve.models import Booking, BookingStatus
from railserve.money import format_amount
from railserve.payment.models import PartStatus, Payment, PaymentPart, PaymentStatus
from railserve.payment.plans import FULL, Part, Plan, describe, load_plans, offered, split
from railserve.payment.rules import Rules, Ticket, load_rules

HOLDING = (BookingStatus.CONFIRMED, BookingStatus.WAITLISTED)
TOOK_MONEY = (PaymentStatus.SUCCESS, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED)


@lru_cache(maxsize=8)
def _rules(path: str) -> Rules:
    return load_rules(path)


def ticket_of(booking: Booking) -> Ticket:
    """The booking as the split sees it (its train read with it): unpaid, as refunds read it."""
    from railserve.payment.refunds import ticket_of as refunds_ticket  # refunds imports service

    return replace(refunds_ticket(booking, paid=False), confirmed=False)


@dataclass(frozen=True)
class Choice:
    """A plan the booking may choose, its parts, and how a passenger reads them."""

    plan: Plan
    parts: tuple[Part, ...]
    label: str


def choices(settings: Settings, booking: Booking, now: datetime) -> tuple[Choice, ...]:
    """The plans on offer for an unpaid booking, `full` first, each split."""
    ticket = ticket_of(booking)
    rules = _rules(settings.refund_rules)
    found = []
    for plan in offered(load_plans(settings.payment_plans), ticket, now):
        parts = split(plan, ticket, rules)
        found.append(Choice(plan, parts, describe(parts, booking.currency)))
    return tuple(found)


@dataclass(frozen=True)
class Due:
    """What an attempt pays: its amount, and for `steps.start` the plan chosen (None: the
    booking stays on `full` as it was) with its parts, or the later part's id."""

    amount: int
    plan: str | None = None
    parts: tuple[Part, ...] = ()
    part: PaymentPart | None = None

    @property
    def part_id(self) -> int | None:
        return self.part.id if self.part is not None else None


async def next_due(booking: Booking) -> PaymentPart | None:
    """The first part still due of a booking whose plan is fixed (None: nothing due)."""
    if booking.plan == FULL or booking.status not in HOLDING:
        return None
    return (
        await PaymentPart.filter(booking_id=booking.id, status=PartStatus.DUE)
        .order_by("seq")
        .first()
    )


async def what_to_pay(
    settings: Settings, booking: Booking, chosen: str | None, now: datetime
) -> Due:
    """What the next attempt of `booking` pays. `chosen` (the form's `plan`) is read only
    while no part is paid; Conflict when nothing can be paid, Invalid for a plan not on offer."""
    if booking.status == BookingStatus.PENDING_PAYMENT:
        name = chosen or FULL
        if name == FULL:
            return Due(booking.amount, None if booking.plan == FULL else FULL)
        offer = {choice.plan.name: choice for choice in choices(settings, booking, now)}
        if name not in offer:
            raise Invalid(
                "That payment plan is not offered for this booking.",
                errors={"plan": "Choose one of the payment plans shown."},
            )
        parts = offer[name].parts
        return Due(parts[0].amount, name, parts)
    if booking.status in HOLDING:
        part = await next_due(booking)
        if part is not None:
            if part.due_at is not None and part.due_at <= now:
                raise Conflict("This part fell due and can no longer be paid.")
            return Due(part.amount, part=part)
        raise Conflict("This booking is already paid.")
    raise Conflict(f"This booking is {booking.status.value.replace('_', ' ')} and cannot be paid.")


@dataclass(frozen=True)
class Standing:
    """A booking's plan as the status JSON, the profile and the receipt show it."""

    name: str
    parts: tuple[PaymentPart, ...]

    @property
    def paid(self) -> int:
        return sum(p.amount for p in self.parts if p.status == PartStatus.PAID)

    @property
    def due(self) -> int:
        return sum(p.amount for p in self.parts if p.status == PartStatus.DUE)

    @property
    def next_due(self) -> PaymentPart | None:
        return next((p for p in self.parts if p.status == PartStatus.DUE), None)

    def json(self, currency: str) -> dict:
        return {
            "name": self.name,
            "paid": format_amount(self.paid, currency),
            "due": format_amount(self.due, currency),
            "parts": [
                {
                    "seq": p.seq,
                    "amount": format_amount(p.amount, currency),
                    "due_at": iso_utc(p.due_at),
                    "status": str(p.status),
                }
                for p in self.parts
            ],
        }


def iso_utc(when: datetime | None) -> str | None:
    if when is None:
        return None
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def standing(booking_id: int, plan: str) -> Standing | None:
    """The booking's parts (None on `full`)."""
    if plan == FULL:
        return None
    parts = await PaymentPart.filter(booking_id=booking_id).order_by("seq")
    return Standing(plan, tuple(parts))


async def standings(bookings: Iterable[Booking]) -> dict[int, Standing]:
    """The parts of several bookings at once (the profile), by booking id."""
    on_plan = {b.id: b.plan for b in bookings if b.plan != FULL}
    if not on_plan:
        return {}
    rows = await PaymentPart.filter(booking_id__in=list(on_plan)).order_by("booking_id", "seq")
    grouped: dict[int, list[PaymentPart]] = {}
    for row in rows:
        grouped.setdefault(row.booking_id, []).append(row)
    return {bid: Standing(on_plan[bid], tuple(grouped.get(bid, ()))) for bid in on_plan}


async def balance_due(booking_id: int) -> bool:
    """Whether a part of the booking is still due."""
    return await PaymentPart.exists(booking_id=booking_id, status=PartStatus.DUE)


async def paid_in(booking_id: int) -> int:
    """What the booking's payments took, less what was refunded."""
    rows = await Payment.filter(
        booking_id=booking_id, status__in=[s.value for s in TOOK_MONEY]
    ).values_list("amount", "refunded_amount")
    return sum(amount - refunded for amount, refunded in rows)
