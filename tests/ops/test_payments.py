"""GET /ops/payments: filters, paging, JSON and htmx, checked against a seeded set."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from railserve.payment.models import Payment, PaymentStatus
from tests.ops import seed
from tests.support.passenger import HX, JSON
from tests.support.queries import count_queries


@dataclass
class Seeded:
    txns: list[str]  # 1-based position in the table of test_filters below: txns[n - 1]
    pnr_b3: str


@pytest.fixture
async def seeded(app) -> Seeded:
    alice = await seed.user("alice@example.com", "Alice")
    bob = await seed.user("bob@example.com", "Bob")
    b1 = await seed.booking(alice, "ABCDEFGH23")
    b2 = await seed.booking(bob, "BCDEFGHJ34")
    b3 = await seed.booking(bob, "CDEFGHJK45")
    rows = [
        (alice, b1, PaymentStatus.FAILED, "credit_card", "simulated", "2026-11-01T10:00:00"),
        (alice, b1, PaymentStatus.SUCCESS, "credit_card", "simulated", "2026-11-01T23:59:59"),
        (bob, b2, PaymentStatus.SUCCESS, "upi", "simupi", "2026-11-02T00:00:00"),
        (bob, b3, PaymentStatus.PENDING, "upi", "simupi", "2026-11-03T12:00:00"),
        (bob, b3, PaymentStatus.CANCELLED, "wallet", "simulated", "2026-11-03T08:00:00"),
    ]
    txns = []
    for owner, held, status, method, gateway, when in rows:
        made = await seed.payment(
            owner,
            held,
            status=status,
            method=method,
            gateway=gateway,
            created_at=datetime.fromisoformat(when).replace(tzinfo=UTC),
        )
        txns.append(made.transaction_id)
    return Seeded(txns, "CDEFGHJK45")


async def _found(operator, query: str) -> list[str]:
    response = await operator.get(f"/ops/payments{query}", JSON)
    assert response.status_code == 200, await response.get_data(as_text=True)
    return [p["transaction_id"] for p in (await response.get_json())["payments"]]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", [4, 5, 3, 2, 1]),  # newest first
        ("?status=success", [3, 2]),
        ("?method=upi", [4, 3]),
        ("?gateway=simupi", [4, 3]),
        ("?q=ALICE@Example.com", [2, 1]),
        ("?q=cdefghjk45", [4, 5]),
        # Days are IST days (RAILSERVE_TIMEZONE): 23:59:59 UTC on 1 Nov is 2 Nov, 05:29 IST.
        ("?from=2026-11-02", [4, 5, 3, 2]),
        ("?to=2026-11-01", [1]),
        ("?from=2026-11-02&to=2026-11-02", [3, 2]),
        ("?status=success&from=2026-11-02", [3, 2]),
        ("?q=cdef", [4, 5]),  # a PNR prefix of four characters
        ("?q=example.com", [4, 5, 3, 2, 1]),  # part of an e-mail
        ("?q=ali", [2, 1]),
        ("?page=99", [4, 5, 3, 2, 1]),  # past the end: the last page
        ("?status=refunded", []),
        ("?from=0001-01-01&to=9999-12-31", [4, 5, 3, 2, 1]),
    ],
)
async def test_filters(operator, seeded, query, expected):
    assert await _found(operator, query) == [seeded.txns[n - 1] for n in expected]


async def test_search_by_exact_transaction_id(operator, seeded):
    assert await _found(operator, f"?q={seeded.txns[2]}") == [seeded.txns[2]]
    assert await _found(operator, f"?q={seeded.txns[2].lower()}") == [seeded.txns[2]]


async def test_search_by_a_transaction_id_prefix(operator, seeded):
    prefix = seeded.txns[2][:8]
    assert seeded.txns[2] in await _found(operator, f"?q={prefix.lower()}")


async def test_json_shape(operator, seeded):
    response = await operator.get(f"/ops/payments?q={seeded.txns[1]}", JSON)
    data = await response.get_json()
    assert (data["page"], data["pages"], data["total"]) == (1, 1, 1)
    assert data["payments"] == [
        {
            "transaction_id": seeded.txns[1],
            "pnr": "ABCDEFGH23",
            "email": "alice@example.com",
            "method": "credit_card",
            "instrument": "Visa •••• 4242",
            "amount": "1250.00",
            "currency": "INR",
            "status": "success",
            "failure_reason": None,
            "refunded_amount": "0.00",
            "gateway": "simulated",
            "created_at": "2026-11-01T23:59:59Z",
            "completed_at": "2026-11-02T00:00:01Z",
        }
    ]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?status=bogus", "status"),
        ("?method=cash", "method"),
        ("?gateway=No%20Such!", "gateway"),
        ("?q=" + "x" * 300, "q"),
        ("?q=a%00b@example.com", "q"),
        ("?from=2026-13-01", "from"),
        ("?from=2026-11-03&to=2026-11-01", "to"),
        ("?page=0", "page"),
        ("?page=abc", "page"),
    ],
)
async def test_bad_filters_are_422_with_a_message(operator, seeded, query, field):
    as_json = await operator.get(f"/ops/payments{query}", JSON)
    assert as_json.status_code == 422
    assert "filters" in (await as_json.get_json())["error"]
    page = await operator.get(f"/ops/payments{query}")
    assert page.status_code == 422
    html = await page.get_data(as_text=True)
    assert 'id="filter-error"' in html
    assert 'id="payment-filters"' in html  # the form stays, to correct it
    csv = await operator.get(f"/ops/payments.csv{query}")
    assert csv.status_code == 422


async def test_htmx_gets_the_results_partial_and_a_plain_form_works_without_it(operator, seeded):
    partial = await operator.text("/ops/payments?status=success", HX)
    assert partial.lstrip().startswith('<div id="payment-results">')
    assert seeded.txns[2] in partial and seeded.txns[0] not in partial
    page = await operator.text("/ops/payments?status=success")
    assert '<form id="payment-filters"' in page and 'method="get"' in page
    assert 'hx-push-url="true"' in page
    assert '<option value="success" selected>' in page


async def _bulk(count: int, start: datetime) -> None:
    owner = await seed.user(f"bulk-{uuid.uuid4().hex[:6]}@example.com")
    held = await seed.booking(owner)
    await Payment.bulk_create(
        [
            Payment(
                transaction_id=seed.txn(),
                booking_id=held.id,
                user_id=owner.id,
                method="upi" if i % 2 else "credit_card",
                amount=1000 + i,
                currency="INR",
                status=PaymentStatus.SUCCESS if i % 3 else PaymentStatus.FAILED,
                instrument="x@upi" if i % 2 else "Visa •••• 4242",
                idempotency_key=f"bulk-{i}-{uuid.uuid4().hex[:8]}",
                created_at=start + timedelta(seconds=i),
            )
            for i in range(count)
        ],
        batch_size=1000,
    )


async def test_fifty_a_page_newest_first(operator, app):
    await _bulk(120, datetime(2026, 10, 1, tzinfo=UTC))
    pages = []
    for number in (1, 2, 3):
        data = await (await operator.get(f"/ops/payments?page={number}", JSON)).get_json()
        assert (data["pages"], data["total"]) == (3, 120)
        pages.append([p["amount"] for p in data["payments"]])
    assert [len(p) for p in pages] == [50, 50, 20]
    amounts = [a for page in pages for a in page]
    assert amounts == [f"{(1000 + i) / 100:.2f}" for i in reversed(range(120))]
    html = await operator.text("/ops/payments?page=2")
    assert 'href="/ops/payments?page=3"' in html and 'rel="prev"' in html


async def test_the_list_makes_the_same_few_queries_whatever_the_page_size(operator, app):
    await _bulk(3, datetime(2026, 10, 1, tzinfo=UTC))
    with count_queries() as few:
        assert (await operator.get("/ops/payments")).status_code == 200
    await _bulk(100, datetime(2026, 10, 2, tzinfo=UTC))
    with count_queries() as many:
        assert (await operator.get("/ops/payments")).status_code == 200
    with count_queries() as as_json:
        assert (await operator.get("/ops/payments", JSON)).status_code == 200
    assert len(few) == len(many) <= 6, many.statements
    assert len(as_json) <= 4, as_json.statements
