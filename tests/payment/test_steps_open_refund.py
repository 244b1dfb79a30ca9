"""Refund opening (steps/open_refund.py), run inside the caller's transaction by the
database in use, leaves the same rows on both (as tests/payment/test_steps.py does for the
payment steps; the suite runs once per database): passengers cancelled, seats released,
the waitlist promoted, the payment moved and the refund recorded, with their notices."""

from __future__ import annotations

import pytest

from railserve import db
from railserve.errors import Conflict
from railserve.models import Booking, Mail, Notification, Train
from railserve.payment import service
from railserve.payment.models import Actor, Payment, PaymentEvent, Refund
from railserve.payment.refunds.opening import lock_booking, locked_payment, open_refund
from tests.payment.test_steps import world

pytestmark = pytest.mark.usefixtures("app")


async def paid(seats: int, *sizes: int) -> list[Payment]:
    """`world`, every attempt settled as a success in turn (confirmed while seats last,
    then waitlisted in that order), its notices and audit events cleared."""
    payments = await world(seats, *sizes)
    for payment in payments:
        assert (await service.settle(payment.transaction_id, True)).applied
    await Notification.all().delete()
    await Mail.all().delete()
    await PaymentEvent.all().delete()
    return payments


async def cancelled(
    payment: Payment, positions: list[int], amount: int, **given: object
) -> tuple[Refund, Payment, Booking]:
    """`open_refund` as its callers run it: payment, train and booking locked first."""

    async def work() -> tuple[Refund, Payment, Booking]:
        locked = await locked_payment(payment.booking_id)
        booking = await lock_booking(payment.booking_id)
        refund = await open_refund(
            locked, booking, positions, amount, actor=Actor.USER, reason="Plans changed", **given
        )
        return refund, locked, booking

    return await db.atomic(work)


async def rows() -> dict[str, list]:
    """What refund opening leaves, without ids or times (which differ by database); a
    refund's random id is written RFD."""
    refund_ids = await Refund.all().values_list("refund_id", flat=True)

    def plain(text: str) -> str:
        for refund_id in refund_ids:
            text = text.replace(refund_id, "RFD")
        return text

    return {
        "seats_left": list(await Train.all().values_list("seats_left", flat=True)),
        "bookings": [
            (b.pnr, b.status.value, b.passenger_count, b.cancelled_positions)
            for b in await Booking.all().order_by("pnr")
        ],
        "payments": [
            (p.transaction_id[-1], p.status.value, p.refunded_amount)
            for p in await Payment.all().order_by("transaction_id")
        ],
        "refunds": [
            (r.status.value, r.passengers, r.amount, r.charge, r.gst, r.actor.value, r.reason)
            for r in await Refund.all().order_by("id")
        ],
        "events": [
            (e.from_status, e.to_status, e.event, e.actor.value, plain(e.detail))
            for e in await PaymentEvent.all().order_by("id")
        ],
        "notices": [(n.kind, plain(n.message)) for n in await Notification.all().order_by("id")],
        "mails": [
            (m.to_address, m.subject, plain(m.body)) for m in await Mail.all().order_by("id")
        ],
    }


REFUND_MAIL = (
    "We are refunding {money} to your Visa •••• 4242 (refund RFD); expect it within "
    "6–7 business days. Reason: Plans changed"
)


async def test_a_partial_cancellation():
    (payment,) = await paid(5, 2)
    refund, locked, booking = await cancelled(payment, [2], 7000, charge=3000)
    assert (locked.status, locked.refunded_amount) == ("partially_refunded", 7000)
    assert (booking.status, booking.passenger_count, booking.cancelled_positions) == (
        "confirmed",
        1,
        [2],
    )
    assert refund.id is not None and refund.status == "pending"
    assert await rows() == {
        "seats_left": [4],
        "bookings": [("B000000001", "confirmed", 1, [2])],
        "payments": [("1", "partially_refunded", 7000)],
        "refunds": [("pending", [2], 7000, 3000, 0, "user", "Plans changed")],
        "events": [
            ("success", "partially_refunded", "refund_part", "user", "RFD: ₹70.00 — Plans changed")
        ],
        "notices": [
            ("refund", "Booking B000000001 updated: refund of ₹70.00 for Passenger 1.2 (RFD).")
        ],
        "mails": [
            (
                "p1@example.com",
                "Refund of ₹70.00 for booking B000000001",
                "Booking B000000001: Passenger 1.2 cancelled. "
                + REFUND_MAIL.format(
                    money="₹70.00 after a cancellation charge of ₹30.00 and GST of ₹0.00"
                ),
            )
        ],
    }


async def test_a_whole_cancellation_of_a_confirmed_booking():
    (payment,) = await paid(5, 2)
    _refund, locked, booking = await cancelled(payment, [1, 2], 20000)
    assert (locked.status, booking.status, booking.passenger_count) == ("refunded", "cancelled", 0)
    assert await rows() == {
        "seats_left": [5],
        "bookings": [("B000000001", "cancelled", 0, [1, 2])],
        "payments": [("1", "refunded", 20000)],
        "refunds": [("pending", [1, 2], 20000, 0, 0, "user", "Plans changed")],
        "events": [("success", "refunded", "refund", "user", "RFD: ₹200.00 — Plans changed")],
        "notices": [
            (
                "refund",
                "Booking B000000001 cancelled: refund of ₹200.00 for Passenger 1.1, "
                "Passenger 1.2 (RFD).",
            )
        ],
        "mails": [
            (
                "p1@example.com",
                "Refund of ₹200.00 for booking B000000001",
                "Booking B000000001: Passenger 1.1, Passenger 1.2 cancelled. "
                + REFUND_MAIL.format(money="₹200.00"),
            )
        ],
    }


PROMOTED_3 = "Good news: booking B000000003 moved from the waitlist to confirmed on T100."


async def test_seats_freed_promote_the_oldest_waitlisted_booking_that_fits():
    # Three seats, all taken by B1; B2 (two), B3 (one) and B4 (one) wait, in that order.
    first, *_waiting = await paid(3, 3, 2, 1, 1)
    await cancelled(first, [3], 10000)
    snapshot = await rows()
    # One seat freed: B2 does not fit and keeps its place; B3 fits; none is left for B4.
    assert snapshot["seats_left"] == [0]
    assert snapshot["bookings"] == [
        ("B000000001", "confirmed", 2, [3]),
        ("B000000002", "waitlisted", 2, []),
        ("B000000003", "confirmed", 1, []),
        ("B000000004", "waitlisted", 1, []),
    ]
    assert snapshot["payments"] == [
        ("1", "partially_refunded", 10000),
        ("2", "success", 0),
        ("3", "success", 0),
        ("4", "success", 0),
    ]
    assert snapshot["events"] == [
        ("success", "partially_refunded", "refund_part", "user", "RFD: ₹100.00 — Plans changed")
    ]
    # The promotion's notice, then the owner's.
    assert snapshot["notices"] == [
        ("promotion", PROMOTED_3),
        ("refund", "Booking B000000001 updated: refund of ₹100.00 for Passenger 1.3 (RFD)."),
    ]
    assert [mail[:2] for mail in snapshot["mails"]] == [
        ("p3@example.com", "Booking B000000003 confirmed from the waitlist"),
        ("p1@example.com", "Refund of ₹100.00 for booking B000000001"),
    ]
    assert snapshot["mails"][0][2] == (
        "Seats freed up on train T100 Steps Express: your booking B000000003 is now "
        "confirmed. Nothing more to do."
    )


async def test_more_than_was_paid_is_refused_and_nothing_written():
    (payment,) = await paid(5, 2)
    before = await rows()
    with pytest.raises(Conflict, match="That would refund more than was paid"):
        await cancelled(payment, [1, 2], 20001)
    assert await rows() == before
