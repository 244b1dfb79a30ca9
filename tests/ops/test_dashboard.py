"""GET /ops: every figure checked against a seeded set whose answers are written by hand."""

from __future__ import annotations

import re
import secrets
from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from railserve.ops import dashboard
from railserve.payment.models import Actor, PaymentStatus, Refund, RefundStatus, WebhookLog
from tests.ops import seed
from tests.support.passenger import HX

S = PaymentStatus
IST = ZoneInfo("Asia/Kolkata")


@pytest.fixture
async def seeded(app) -> dict:
    now = datetime.now(UTC)
    owner = await seed.user("dash@example.com")
    held = await seed.booking(owner)
    minutes = timedelta(minutes=1)
    rows = [
        # status, method, amount, minutes ago
        (S.SUCCESS, "credit_card", 1000, 10),
        (S.SUCCESS, "credit_card", 2000, 10),
        (S.SUCCESS, "credit_card", 3000, 90),
        (S.PARTIALLY_REFUNDED, "upi", 4000, 90),
        (S.FAILED, "upi", 500, 90),
        (S.FAILED, "upi", 500, 23 * 60 + 30),
        (S.CANCELLED, "wallet", 700, 23 * 60 + 30),
        (S.PENDING, "net_banking", 900, 120),  # stuck: needs attention
        # Outside the 24 hours: counted only as pending now.
        (S.SUCCESS, "credit_card", 99999, 26 * 60),
        (S.PENDING, "upi", 99999, 30 * 60),
    ]
    made = {}
    for status, method, amount, ago in rows:
        p = await seed.payment(
            owner, held, status=status, method=method, amount=amount, created_at=now - ago * minutes
        )
        made.setdefault(status, []).append(p.transaction_id)
    paid = made[S.SUCCESS][0]
    for status in (
        RefundStatus.PENDING,
        RefundStatus.FAILED,
        RefundStatus.FAILED,
        RefundStatus.SUCCEEDED,
    ):
        await Refund.create(
            refund_id="RFD" + secrets.token_hex(8).upper(),
            payment_id=(await seed.Payment.get(transaction_id=paid)).id,
            amount=100,
            actor=Actor.OPERATOR,
            status=status,
        )
    for code, valid, ago in (
        (200, True, 5),
        (401, False, 5),
        (409, True, 60),
        (400, True, 26 * 60),
    ):
        await WebhookLog.create(
            provider="simulated",
            signature_valid=valid,
            status_code=code,
            body="{}",
            received_at=now - ago * minutes,
        )
    return made


async def test_the_figures_match_the_hand_counted_answers(seeded):
    now = datetime.now(UTC)
    f = await dashboard.figures(now, timedelta(minutes=60))
    assert f.attempts == 8
    assert (f.captured_count, f.settled_count) == (4, 7)
    assert f.amount_captured == 1000 + 2000 + 3000 + 4000
    assert f.pending_now == 2
    assert (f.refunds_pending, f.refunds_failed) == (1, 2)
    assert f.webhooks_refused == 2
    assert dict(f.methods) == {
        "Credit card": 3,
        "Debit card": 0,
        "Net banking": 1,
        "UPI": 3,
        "Wallet": 1,
    }
    # Whole hours of IST (RAILSERVE_TIMEZONE), the last one holding now.
    starts = [h.start for h in f.hours]
    assert all(s.astimezone(IST).minute == 0 for s in starts)
    assert all(b - a == timedelta(hours=1) for a, b in pairwise(starts))
    assert starts[-1] <= now < starts[-1] + timedelta(hours=1)
    expected: dict[int, Counter] = {}
    for outcome, ago in (
        ("succeeded", 10),
        ("succeeded", 10),
        ("succeeded", 90),
        ("succeeded", 90),
        ("failed", 90),
        ("failed", 23 * 60 + 30),
        ("cancelled", 23 * 60 + 30),
        ("pending", 120),
    ):
        created = now - timedelta(minutes=ago)
        index = max(0, int((created - starts[0]) // timedelta(hours=1)))
        expected.setdefault(index, Counter())[outcome] += 1
    counts = {i: {k: v for k, v in h.counts.items() if v} for i, h in enumerate(f.hours) if h.total}
    assert counts == {i: dict(c) for i, c in expected.items()}
    kinds = [item.what for item in f.attention]
    assert kinds.count("Attempt pending longer than expected") == 2
    assert sum(k.startswith("Refund RFD") and k.endswith(" failed") for k in kinds) == 2
    assert sum(k.startswith("Webhook refused") for k in kinds) == 2


def _figure(html: str, name: str) -> str:
    match = re.search(rf'id="fig-{name}">(?:<a [^>]*>)?([^<]+)', html)
    assert match, name
    return match.group(1)


async def test_the_page_shows_them_with_links_and_a_chart_with_its_numbers(operator, seeded):
    html = await operator.text("/ops")
    assert _figure(html, "attempts") == "8"
    assert _figure(html, "success-rate") == "57.1%"
    assert _figure(html, "captured") == "₹100.00"
    assert _figure(html, "pending") == "2"
    assert _figure(html, "refunds-pending") == "1"
    assert _figure(html, "refunds-failed") == "2"
    assert _figure(html, "webhooks-refused") == "2"
    assert '<svg class="hour-chart"' in html and '<title id="chart-title">' in html
    assert html.count('class="bar bar-succeeded"') == 2  # two hours with successes
    assert '<table id="hour-table">' in html and "<caption>" in html
    stuck = seeded[S.PENDING][0]
    assert f'href="/ops/payments/{stuck}"' in html
    assert "style=" not in html and "<script>" not in html


async def test_the_dashboard_refreshes_itself(operator, seeded):
    partial = await operator.text("/ops", HX)
    assert partial.lstrip().startswith('<div id="dashboard" hx-get="/ops" hx-trigger="every 10s"')
    assert "<html" not in partial


async def test_an_empty_dashboard(operator):
    html = await operator.text("/ops")
    assert _figure(html, "attempts") == "0"
    assert _figure(html, "success-rate") == "—"
    assert "Nothing needs attention." in html
