"""Seats and the waitlist: where a booking stands on it, and the words of its notices.

Every change of seats is one conditional update, written in the money steps (a payment's
seating: railserve/payment/steps/settle.py; seats released and the waitlist promoted when
passengers are cancelled: railserve/payment/steps/open_refund.py). Seats are taken with
`UPDATE trains SET seats_left = seats_left - n WHERE seats_left >= n`, never read and
written back, so no two workers can sell the same seat.
"""

from __future__ import annotations

from tortoise.expressions import Q

from railserve.display import format_money
from railserve.models import Booking, BookingStatus, Train


async def waitlist_position(booking: Booking) -> int | None:
    """1 for the oldest paid booking still waiting on this train; None when not waiting."""
    if booking.status != BookingStatus.WAITLISTED or booking.paid_at is None:
        return None
    ahead = await Booking.filter(
        Q(paid_at__lt=booking.paid_at) | Q(paid_at=booking.paid_at, id__lt=booking.id),
        train_id=booking.train_id,
        status=BookingStatus.WAITLISTED,
    ).count()
    return ahead + 1


async def waitlist_positions(bookings: list[Booking]) -> dict[int, int]:
    """Positions of the waitlisted ones among `bookings`, in one query (the profile)."""
    trains = {b.train_id for b in bookings if b.status == BookingStatus.WAITLISTED}
    if not trains:
        return {}
    queue = (
        await Booking.filter(train_id__in=trains, status=BookingStatus.WAITLISTED)
        .order_by("paid_at", "id")
        .values_list("id", "train_id")
    )
    seen: dict[int, int] = {}
    positions: dict[int, int] = {}
    for booking_id, train_id in queue:
        seen[train_id] = seen.get(train_id, 0) + 1
        positions[booking_id] = seen[train_id]
    wanted = {b.id for b in bookings}
    return {k: v for k, v in positions.items() if k in wanted}


def confirmation_notice(booking: Booking, train: Train) -> tuple[str, str, str]:
    """The words of a confirmation: in-app message, mail subject and mail body."""
    return (
        f"Booking {booking.pnr} confirmed on {train.number} {train.name}.",
        f"Booking {booking.pnr} confirmed",
        (
            f"Your booking {booking.pnr} on train {train.number} {train.name} "
            f"({train.origin} to {train.destination}) is confirmed for "
            f"{', '.join(booking.passengers)}. Amount paid: "
            f"{format_money(booking.amount, booking.currency)}."
        ),
    )


def waitlist_notice(booking: Booking, train: Train, position: int) -> tuple[str, str, str]:
    """The words of a waitlisting: in-app message, mail subject and mail body."""
    return (
        f"Booking {booking.pnr} is waitlisted at position {position} on {train.number}.",
        f"Booking {booking.pnr} waitlisted (position {position})",
        (
            f"Train {train.number} {train.name} is full. Your paid booking {booking.pnr} is on "
            f"the waitlist at position {position}; it is confirmed automatically when seats "
            "free up, or refunded in full if you cancel."
        ),
    )


def promotion_notice(pnr: str, train: Train) -> tuple[str, str, str]:
    """The words of a promotion from the waitlist: in-app message, mail subject and body."""
    return (
        f"Good news: booking {pnr} moved from the waitlist to confirmed on {train.number}.",
        f"Booking {pnr} confirmed from the waitlist",
        (
            f"Seats freed up on train {train.number} {train.name}: your booking {pnr} "
            "is now confirmed. Nothing more to do."
        ),
    )
