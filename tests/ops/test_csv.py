"""GET /ops/payments.csv: the header, the rows, the filters, 20,000 rows streamed."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from railserve.ops import queries
from tests.ops.test_payments import _bulk
from tests.support.queries import count_queries

HEADER = (
    "transaction_id,pnr,email,method,instrument,amount,currency,status,failure_reason,"
    "refunded_amount,gateway,created_at,completed_at"
)


async def test_twenty_thousand_rows_stream_in_keyset_batches(operator, app):
    await _bulk(20_000, datetime(2026, 9, 1, tzinfo=UTC))
    with count_queries() as sent:
        response = await operator.get("/ops/payments.csv")
        assert response.status_code == 200
        assert response.mimetype == "text/csv"
        assert "attachment" in response.headers["Content-Disposition"]
        text = await response.get_data(as_text=True)
    lines = text.split("\r\n")
    assert lines[0] == HEADER
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 20_000
    # Newest first: the last inserted (i = 19999, 333 minutes and 19 s after the start).
    assert rows[0]["amount"] == f"{(1000 + 19_999) / 100:.2f}"
    assert rows[0]["created_at"] == "2026-09-01T05:33:19Z"
    assert rows[-1]["amount"] == "10.00"
    assert len({r["transaction_id"] for r in rows}) == 20_000
    # Fetched a batch at a time (never the whole list in one query).
    selects = [s for s in sent.statements if "payments" in s and "LIMIT" in s.upper()]
    assert len(selects) >= 20_000 // queries.CSV_BATCH


async def test_csv_rows_follow_the_filters(operator, app):
    await _bulk(30, datetime(2026, 9, 1, tzinfo=UTC))
    text = await operator.text("/ops/payments.csv?method=upi&status=failed")
    rows = list(csv.DictReader(io.StringIO(text)))
    # i odd (upi) and i % 3 == 0 (failed): 3, 9, 15, 21, 27.
    assert [r["amount"] for r in rows] == ["10.27", "10.21", "10.15", "10.09", "10.03"]
    row = rows[0]
    assert (row["method"], row["status"], row["instrument"], row["currency"]) == (
        "upi",
        "failed",
        "x@upi",
        "INR",
    )
    assert row["refunded_amount"] == "0.00" and row["completed_at"] == ""
