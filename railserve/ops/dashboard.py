"""The dashboard's figures: each one a query an operator could write by hand.

Over the 24 hours before `now`: attempts (payments created), success rate (attempts that
captured money — success, partially refunded, refunded — over attempts that are no
longer pending), amount captured (the sum of those attempts' amounts, before refunds),
attempts per hour by outcome, and the method mix. Right now: pending attempts, refunds
pending or failed. Refused webhooks: logged with an answer of 400 or more, or a
signature that did not hold, in the same 24 hours.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from tortoise.expressions import Q
from tortoise.functions import Count, Sum

from railserve import display
from railserve.models import Mail
from railserve.notify import MAX_MAIL_ATTEMPTS
from railserve.ops import parts as part_list
from railserve.payment.models import (
    METHOD_LABELS,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Refund,
    RefundStatus,
    WebhookLog,
)

WINDOW = timedelta(hours=24)
OUTCOMES = ("succeeded", "failed", "cancelled", "pending")
OUTCOME_OF = {
    PaymentStatus.SUCCESS: "succeeded",
    PaymentStatus.PARTIALLY_REFUNDED: "succeeded",
    PaymentStatus.REFUNDED: "succeeded",
    PaymentStatus.FAILED: "failed",
    PaymentStatus.CANCELLED: "cancelled",
    PaymentStatus.PENDING: "pending",
}
CAPTURED = [PaymentStatus.SUCCESS, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED]
ATTENTION_LIMIT = 20


@dataclass
class Hour:
    start: datetime
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class Attention:
    what: str
    transaction_id: str | None
    webhook_id: int | None = None


@dataclass
class Figures:
    since: datetime
    attempts: int
    captured_count: int
    settled_count: int
    amount_captured: int
    hours: list[Hour]
    methods: list[tuple[str, int]]
    pending_now: int
    refunds_pending: int
    refunds_failed: int
    webhooks_refused: int
    mails_failed: int
    attention: list[Attention]
    parts_due: int = 0  # parts of bookings paid in parts falling due in the next 24 h

    @property
    def success_rate(self) -> float | None:
        return self.captured_count / self.settled_count if self.settled_count else None


def refused_webhooks() -> Q:
    return Q(status_code__gte=400) | Q(signature_valid=False)


async def figures(now: datetime, stuck_after: timedelta) -> Figures:
    since = now - WINDOW
    recent = Payment.filter(created_at__gte=since, created_at__lte=now)
    by_status = dict(
        await recent.annotate(n=Count("id")).group_by("status").values_list("status", "n")
    )
    captured = [s.value for s in CAPTURED]
    amount = (
        await recent.filter(status__in=captured)
        .annotate(total=Sum("amount"))
        .first()
        .values_list("total", flat=True)
    )
    method_counts = dict(
        await recent.annotate(n=Count("id")).group_by("method").values_list("method", "n")
    )
    refund_counts = dict(
        await Refund.filter(status__in=[RefundStatus.PENDING, RefundStatus.FAILED])
        .annotate(n=Count("id"))
        .group_by("status")
        .values_list("status", "n")
    )
    by_status = {str(k): v for k, v in by_status.items()}
    return Figures(
        since=since,
        attempts=sum(by_status.values()),
        captured_count=sum(by_status.get(s, 0) for s in captured),
        settled_count=sum(v for k, v in by_status.items() if k != PaymentStatus.PENDING),
        amount_captured=int(amount or 0),
        hours=await _hours(recent, now),
        methods=[
            (METHOD_LABELS[m], method_counts.get(m.value, method_counts.get(m, 0)))
            for m in PaymentMethod
        ],
        pending_now=await Payment.filter(status=PaymentStatus.PENDING).count(),
        refunds_pending=refund_counts.get(RefundStatus.PENDING, 0),
        refunds_failed=refund_counts.get(RefundStatus.FAILED, 0),
        webhooks_refused=await WebhookLog.filter(refused_webhooks(), received_at__gte=since)
        .filter(received_at__lte=now)
        .count(),
        mails_failed=await Mail.filter(failed_at__not_isnull=True).count(),
        attention=await _attention(now, stuck_after, since),
        parts_due=await part_list.due_within(now),
    )


def hour_starts(now: datetime) -> list[datetime]:
    """24 whole hours of the configured zone, oldest first, the last one holding `now`, so a
    chart's ticks read 14:00, 15:00 … rather than the minute the page was opened."""
    current = now.astimezone(display.zone()).replace(minute=0, second=0, microsecond=0)
    last = current.astimezone(UTC)
    return [last - timedelta(hours=23 - i) for i in range(24)]


async def _hours(recent, now: datetime) -> list[Hour]:
    """24 one-hour buckets, oldest first; the first also holds the minutes of the 24 hours
    before its start."""
    hours = [Hour(start) for start in hour_starts(now)]
    start = hours[0].start
    rows = await recent.values_list("created_at", "status")
    for created_at, status in rows:
        index = max(0, min(23, int((created_at - start) // timedelta(hours=1))))
        hours[index].counts[OUTCOME_OF[PaymentStatus(status)]] += 1
    return hours


async def _attention(now: datetime, stuck_after: timedelta, since: datetime) -> list[Attention]:
    """What an operator should look at: each item names what to open."""
    items: list[Attention] = []
    stuck = (
        await Payment.filter(status=PaymentStatus.PENDING, created_at__lt=now - stuck_after)
        .order_by("created_at")
        .limit(ATTENTION_LIMIT)
        .values_list("transaction_id", flat=True)
    )
    items += [Attention("Attempt pending longer than expected", t) for t in stuck]
    failed = (
        await Refund.filter(status=RefundStatus.FAILED)
        .order_by("-id")
        .limit(ATTENTION_LIMIT)
        .values_list("refund_id", "payment__transaction_id")
    )
    items += [Attention(f"Refund {r} failed", t) for r, t in failed]
    refused = (
        await WebhookLog.filter(refused_webhooks(), received_at__gte=since)
        .order_by("-id")
        .limit(ATTENTION_LIMIT)
        .values_list("id", "status_code", "transaction_id")
    )
    mails = (
        await Mail.filter(failed_at__not_isnull=True)
        .order_by("-id")
        .limit(ATTENTION_LIMIT)
        .values_list("id", "to_address", "subject", "last_error")
    )
    items += [
        Attention(
            f"Mail {i} to {to} failed after {MAX_MAIL_ATTEMPTS} tries ({subject}): {error}", None
        )
        for i, to, subject, error in mails
    ]
    returned = await _money_returned({t for _, code, t in refused if code == 409 and t})
    items += [
        Attention(f"Webhook refused with {code}", t, i)
        for i, code, t in refused
        if not (code == 409 and t in returned)
    ]
    unpaid = await part_list.cancelled_for_non_payment(since, ATTENTION_LIMIT)
    items += [Attention(f"Booking {pnr} cancelled for non-payment", t) for pnr, t in unpaid]
    return items[:ATTENTION_LIMIT]


async def _money_returned(transaction_ids: set[str]) -> set[str]:
    """Attempts that ended without taking the booking whose captured money went back in
    full: the success their gateway reported late (a refused 409) needs no one any more."""
    if not transaction_ids:
        return set()
    ended = await Payment.filter(
        transaction_id__in=transaction_ids,
        status__in=[PaymentStatus.FAILED, PaymentStatus.CANCELLED],
    ).values_list("transaction_id", "amount", "refunded_amount")
    open_refunds = set(
        await Refund.filter(
            payment__transaction_id__in=transaction_ids, status__not=RefundStatus.SUCCEEDED
        ).values_list("payment__transaction_id", flat=True)
    )
    return {
        txn for txn, amount, refunded in ended if refunded >= amount and txn not in open_refunds
    }


def outcome_counts(hours: list[Hour]) -> Counter:
    total: Counter = Counter()
    for hour in hours:
        total.update(hour.counts)
    return total
