"""Expiry and reconciliation: what keeps an attempt or a hold from waiting forever.

Run by `railserve sweep` and periodically by the app. Every step is a compare-and-set,
so running it twice, or in two workers at once, has the effect of running it once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from railserve import store
from railserve.config import Settings
from railserve.models import Booking, BookingStatus
from railserve.notify import deliver_outbox
from railserve.payment import cancelling, dues, live, service, settlement
from railserve.payment.models import Actor, Payment, PaymentStatus
from railserve.payment.providers import Gateway
from railserve.payment.refunds import handover, spread
from railserve.payment.steps.expire import DEPARTED_UNPAID, HELD_TOO_LONG, expire

log = logging.getLogger(__name__)

TIMED_OUT = "timed out"
BATCH = 500


@dataclass
class SweepReport:
    reconciled: list[str] = field(default_factory=list)
    timed_out: list[str] = field(default_factory=list)
    expired_bookings: list[str] = field(default_factory=list)
    departed_refunded: list[str] = field(default_factory=list)
    refunded_late: list[str] = field(default_factory=list)
    refunds_settled: int = 0
    mails_sent: int = 0
    parts_reminded: list[str] = field(default_factory=list)
    cancelled_for_non_payment: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"reconciled {len(self.reconciled)}, timed out {len(self.timed_out)}, "
            f"expired bookings {len(self.expired_bookings)}, "
            f"waitlisted at departure refunded {len(self.departed_refunded)}, "
            f"late payments refunded {len(self.refunded_late)}, "
            f"refunds settled {self.refunds_settled}, mails sent {self.mails_sent}"
            + (
                f", parts reminded {len(self.parts_reminded)}, "
                f"cancelled for non-payment {len(self.cancelled_for_non_payment)}"
                if self.parts_reminded or self.cancelled_for_non_payment
                else ""
            )
        )


async def sweep(settings: Settings, gateway: Gateway, now: datetime | None = None) -> SweepReport:
    now = now or service.now_utc()
    report = SweepReport()
    await reconcile_pending(settings, gateway, now, report)
    await expire_holds(settings, now, report)
    await close_departed(settings, gateway, now, report)
    await refund_late_payments(settings, gateway, report)
    report.parts_reminded = await dues.send_reminders(settings, now)
    report.cancelled_for_non_payment = await dues.cancel_missed(settings, gateway, now)
    report.refunds_settled = await handover.reconcile_refunds(gateway, settings, now=now)
    report.mails_sent = await deliver_outbox(settings.smtp_url, now=now)
    await live.forget_old_changes(now)
    return report


async def reconcile_pending(
    settings: Settings, gateway: Gateway, now: datetime, report: SweepReport
) -> None:
    """Ask the gateway about attempts that should have settled; time out the rest."""
    settled_by = now - timedelta(seconds=settings.gateway_delay + 5)
    timeout_at = now - timedelta(seconds=settings.payment_timeout)
    stale = (
        await Payment.filter(status=PaymentStatus.PENDING, created_at__lt=settled_by)
        .order_by("created_at")
        .limit(BATCH)
    )
    for payment in stale:
        state = await reconcile_one(settings, gateway, payment)
        if state == "applied":
            report.reconciled.append(payment.transaction_id)
        elif (
            state not in ("succeeded", "failed")
            and payment.created_at < timeout_at
            and await cancelling.cancel_pending(payment.id, TIMED_OUT, actor=Actor.SYSTEM)
        ):
            report.timed_out.append(payment.transaction_id)


async def reconcile_one(
    settings: Settings,
    gateway: Gateway,
    payment: Payment,
    *,
    actor: Actor = Actor.SYSTEM,
    detail: str = "reconciled with the gateway",
) -> str:
    """Ask the gateway about one attempt and apply a final answer to it if still pending.

    Returns "applied" when this call moved the attempt, else the gateway's state
    ("succeeded" or "failed" when someone else applied it first, "pending", "unknown").
    """
    answer = await gateway.query(payment.transaction_id)
    if answer.state not in ("succeeded", "failed"):
        return answer.state
    result = await settlement.settle_and_follow_up(
        gateway,
        settings,
        payment.transaction_id,
        answer.state == "succeeded",
        reason=answer.failure_reason,
        retryable=answer.retryable,
        actor=actor,
        detail=detail,
    )
    return "applied" if result.applied else answer.state


async def expire_holds(settings: Settings, now: datetime, report: SweepReport) -> None:
    cutoff = now - timedelta(seconds=settings.booking_hold)
    stale = (
        await Booking.filter(status=BookingStatus.PENDING_PAYMENT, created_at__lt=cutoff)
        .select_related("train", "user")
        .limit(BATCH)
    )
    for booking in stale:
        if await _expire(booking, HELD_TOO_LONG):
            report.expired_bookings.append(booking.pnr)


async def _expire(booking: Booking, why: str) -> bool:
    """Expire an unpaid booking read with its train and user; False if it moved."""
    return await store.run(lambda: expire(booking, booking.train.number, booking.user.email, why))


async def close_departed(
    settings: Settings, gateway: Gateway, now: datetime, report: SweepReport
) -> None:
    """Booking closes when the train departs: its unpaid bookings expire, and each booking
    still waitlisted is cancelled and refunded less the waitlist clerkage."""
    departed = {"train__departs_at__lte": now, "train__cancelled_at": None}
    unpaid = (
        await Booking.filter(status=BookingStatus.PENDING_PAYMENT, **departed)
        .select_related("train", "user")
        .limit(BATCH)
    )
    for booking in unpaid:
        if await _expire(booking, DEPARTED_UNPAID):
            report.expired_bookings.append(booking.pnr)
    waitlisted = (
        await Booking.filter(status=BookingStatus.WAITLISTED, **departed)
        .order_by("paid_at")
        .limit(BATCH)
        .values_list("id", "pnr")
    )
    for booking_id, pnr in waitlisted:
        if await spread.refund_departed(gateway, settings, booking_id):
            report.departed_refunded.append(pnr)


async def refund_late_payments(settings: Settings, gateway: Gateway, report: SweepReport) -> None:
    """Successes whose booking could not take them (expired and full, or cancelled)."""
    orphans = await Payment.filter(
        status=PaymentStatus.SUCCESS,
        booking__status__in=BookingStatus.ENDED,
    ).limit(BATCH)
    for payment in orphans:
        if await spread.refund_in_full(
            gateway,
            settings,
            payment.id,
            actor=Actor.SYSTEM,
            reason=service.LATE_REFUND_MESSAGE,
        ):
            report.refunded_late.append(payment.transaction_id)
