"""Seats and the waitlist: every change is one conditional update.

These run inside the caller's transaction (a payment's own seating is a step of its
settlement: railserve/payment/steps/settle.py). Seats are taken with
`UPDATE trains SET seats_left = seats_left - n WHERE seats_left >= n`, never read and
written back, so no two workers can sell the same seat.
"""

from __future__ import annotations

from tortoise.expressions import F, Q

from railserve.display import format_money
from railserve.models import Booking, BookingStatus, Train
from railserve.notify import notify


async def take_seats(train_id: int, count: int) -> bool:
    taken = await Train.filter(id=train_id, seats_left__gte=count).update(
        seats_left=F("seats_left") - count
    )
    return taken == 1


async def release_seats(train_id: int, count: int) -> None:
    await Train.filter(id=train_id).update(seats_left=F("seats_left") + count)


async def move_booking(
    booking: Booking, sources: tuple[BookingStatus, ...], target: BookingStatus, **changes
) -> bool:
    """Compare-and-set a booking's status; False when another change got there first."""
    moved = await Booking.filter(id=booking.id, status__in=list(sources)).update(
        status=target, **changes
    )
    if moved:
        booking.status = target
        for name, value in changes.items():
            setattr(booking, name, value)
        # The live notice (`b:<id>`) is written by a trigger on `bookings` (migration 0003).
    return moved == 1


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


async def promote_waitlist(train_id: int) -> list[Booking]:
    """Confirm the oldest waitlisted bookings that now fit; skip, in place, those that do not."""
    promoted: list[Booking] = []
    train = await Train.get(id=train_id)
    waiting = await Booking.filter(train_id=train_id, status=BookingStatus.WAITLISTED).order_by(
        "paid_at", "id"
    )
    seats_left = train.seats_left
    for booking in waiting:
        if booking.passenger_count > seats_left:
            continue
        if not await take_seats(train_id, booking.passenger_count):
            seats_left = (await Train.get(id=train_id)).seats_left
            continue
        if not await move_booking(booking, (BookingStatus.WAITLISTED,), BookingStatus.CONFIRMED):
            await release_seats(train_id, booking.passenger_count)
            continue
        seats_left -= booking.passenger_count
        promoted.append(booking)
        await notify(
            booking.user_id,
            booking.id,
            "promotion",
            f"Good news: booking {booking.pnr} moved from the waitlist to confirmed on {train.number}.",
            subject=f"Booking {booking.pnr} confirmed from the waitlist",
            body=(
                f"Seats freed up on train {train.number} {train.name}: your booking {booking.pnr} "
                "is now confirmed. Nothing more to do."
            ),
        )
        if seats_left <= 0:
            break
    return promoted
