"""The railway cancels a train: every booking on it is cancelled and paid ones refunded
in full, with no charge (`railserve cancel-train`).

Each booking is its own transaction and every step is a compare-and-set, so the command
can be killed at any point and run again: bookings already done are skipped, and refunds
committed but not yet handed to the gateway are handed over on the next run (or by the
sweep).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from railserve import store
from railserve.bounds import clip
from railserve.config import Settings
from railserve.errors import Conflict, NotFound
from railserve.models import Booking, BookingStatus, Train
from railserve.payment import cancelling, service
from railserve.payment.models import Actor, Payment, PaymentStatus, Refund, RefundStatus
from railserve.payment.providers import Gateway
from railserve.payment.refunds import handover, spread
from railserve.payment.steps import open_refund


@dataclass
class TrainCancellation:
    train: str
    cancelled_unpaid: int = 0
    refunded: int = 0
    handed_over: int = 0

    def summary(self) -> str:
        return (
            f"train {self.train} cancelled: {self.refunded} paid bookings refunded in full, "
            f"{self.cancelled_unpaid} unpaid bookings cancelled, {self.handed_over} earlier "
            "refunds handed to the gateway"
        )


async def cancel_train(
    gateway: Gateway,
    settings: Settings,
    number: str,
    reason: str,
    progress: Callable[[int, int], None] = lambda done, total: None,
    pause: float = 0.0,
) -> TrainCancellation:
    train = await Train.get_or_none(number=number.upper())
    if train is None:
        raise NotFound(f"There is no train {number}.")
    now = service.now_utc()
    # First, so that nobody books it while we work (a second run keeps the first reason).
    await Train.filter(id=train.id, cancelled_at=None).update(
        cancelled_at=now, cancellation_reason=clip(reason)
    )
    why = f"Train {train.number} was cancelled by the railway: {reason}"
    report = TrainCancellation(train.number)
    # A run killed between a commit and the gateway left refunds nobody asked for yet.
    for refund in await Refund.filter(
        status=RefundStatus.PENDING, attempts=0, payment__booking__train_id=train.id
    ):
        await handover.ask_gateway(gateway, settings, refund.id)
        report.handed_over += 1
    bookings = await Booking.filter(train_id=train.id, status__in=BookingStatus.OPEN).order_by("id")
    for done, booking in enumerate(bookings, 1):
        await booking.fetch_related("train")
        if booking.status == BookingStatus.PENDING_PAYMENT:
            try:
                await cancelling.cancel_unpaid(booking, actor=Actor.SYSTEM, why=why)
                report.cancelled_unpaid += 1
            except Conflict:  # paid meanwhile: refunded below on the next run
                pass
        else:
            # Every payment in full: a booking paid in parts has several (issue 20).
            paid = await Payment.filter(
                booking_id=booking.id, status__in=list(PaymentStatus.REFUNDABLE)
            ).values_list("id", flat=True)
            returned = [
                await spread.refund_in_full(
                    gateway, settings, payment_id, actor=Actor.SYSTEM, reason=f"{why}. Full refund."
                )
                for payment_id in paid
            ]
            if any(returned):
                report.refunded += 1
            if booking.plan != "full":
                await store.run(partial(open_refund.cancel_parts_due, booking.id))
        progress(done, len(bookings))
        if pause:
            await asyncio.sleep(pause)
    return report
