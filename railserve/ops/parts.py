"""Operators' view of paying in parts: parts falling due soon and parts missed lately,
each with its booking's latest attempt (`GET /ops/parts`, the dashboard's figures)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from railserve.errors import Invalid
from railserve.models import BookingStatus
from railserve.money import format_amount
from railserve.payment.models import PartStatus, Payment, PaymentPart
from railserve.payment.parts import iso_utc

# Parts of bookings still held: a booking never paid (its plan chosen, then expired or
# cancelled) has parts nobody owes.
HOLDING = [BookingStatus.CONFIRMED.value, BookingStatus.WAITLISTED.value]
MISSED_SINCE = timedelta(days=7)
DEFAULT_HOURS = 24.0
MAX_HOURS = 100_000  # about eleven years: trains are sold well ahead of departure
LIMIT = 500


def parse_hours(args: Mapping[str, str]) -> float:
    raw = args.get("hours", "").strip()
    if not raw:
        return DEFAULT_HOURS
    try:
        hours = float(raw)
    except ValueError:
        hours = -1.0
    if not 0 < hours <= MAX_HOURS:
        message = f"hours must be a number of hours, more than 0 and at most {MAX_HOURS}."
        raise Invalid(message, errors={"hours": message})
    return hours


async def listing(now: datetime, hours: float) -> list[dict]:
    """Parts due in the next `hours`, then parts missed in the last 7 days."""
    due = PaymentPart.filter(
        status=PartStatus.DUE,
        due_at__gt=now,
        due_at__lte=now + timedelta(hours=hours),
        booking__status__in=HOLDING,
    ).order_by("due_at", "id")
    missed = PaymentPart.filter(
        status=PartStatus.MISSED, due_at__gte=now - MISSED_SINCE, due_at__lte=now
    ).order_by("-due_at", "id")
    rows = []
    for query in (due, missed):
        rows += await query.limit(LIMIT).values(
            "booking_id",
            "seq",
            "of",
            "amount",
            "currency",
            "due_at",
            "status",
            pnr="booking__pnr",
            plan="booking__plan",
            email="booking__user__email",
        )
    latest = await latest_attempts({row["booking_id"] for row in rows})
    return [
        {
            "pnr": row["pnr"],
            "email": row["email"],
            "plan": row["plan"],
            "seq": row["seq"],
            "of": row["of"],
            "amount": format_amount(row["amount"], row["currency"]),
            "currency": row["currency"],
            "due_at": iso_utc(row["due_at"]),
            "status": str(row["status"]),
            "transaction_id": latest.get(row["booking_id"]),
        }
        for row in rows
    ]


async def latest_attempts(booking_ids: set[int]) -> dict[int, str]:
    if not booking_ids:
        return {}
    found: dict[int, str] = {}
    for booking_id, transaction_id in (
        await Payment.filter(booking_id__in=list(booking_ids))
        .order_by("id")
        .values_list("booking_id", "transaction_id")
    ):
        found[booking_id] = transaction_id  # the last one read is the latest
    return found


async def due_within(now: datetime, hours: float = DEFAULT_HOURS) -> int:
    return await PaymentPart.filter(
        status=PartStatus.DUE,
        due_at__gt=now,
        due_at__lte=now + timedelta(hours=hours),
        booking__status__in=HOLDING,
    ).count()


async def cancelled_for_non_payment(since: datetime, limit: int) -> list[tuple[str, str | None]]:
    """(PNR, latest attempt) of bookings cancelled for non-payment whose part fell due since."""
    rows = (
        await PaymentPart.filter(status=PartStatus.MISSED, due_at__gte=since)
        .order_by("-due_at")
        .limit(limit)
        .values_list("booking_id", "booking__pnr")
    )
    seen: dict[int, str] = {}
    for booking_id, pnr in rows:
        seen.setdefault(booking_id, pnr)
    latest = await latest_attempts(set(seen))
    return [(pnr, latest.get(booking_id)) for booking_id, pnr in seen.items()]
