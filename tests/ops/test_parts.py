"""Operators and paying in parts: `/ops/parts`, the dashboard, the payment detail."""

from __future__ import annotations

from datetime import timedelta

from railserve.payment.models import PaymentPart
from railserve.sweep import sweep
from tests.payment.test_parts_after import deposit_paid, gateway_of

JSON = {"Accept": "application/json"}


async def parts_json(operator, query: str = "") -> list[dict]:
    response = await operator.get(f"/ops/parts{query}", JSON)
    assert response.status_code == 200
    return (await response.get_json())["parts"]


async def test_parts_due_then_missed(app, settings, operator, passenger):
    booking_id, _train = await deposit_paid(passenger)
    balance = await PaymentPart.get(booking_id=booking_id, seq=2)
    assert await parts_json(operator) == []  # due in 27 days, not in the next 24 h
    (row,) = await parts_json(operator, f"?hours={30 * 24}")
    txn = row["transaction_id"]
    assert {k: v for k, v in row.items() if k != "transaction_id"} == {
        "pnr": row["pnr"],
        "email": passenger.email,
        "plan": "deposit",
        "seq": 2,
        "of": 2,
        "amount": "1875.75",
        "currency": "INR",
        "due_at": balance.due_at.isoformat().replace("+00:00", "Z"),
        "status": "due",
    }
    assert txn.startswith("TXN")
    page = await operator.text(f"/ops/parts?hours={30 * 24}")
    assert row["pnr"] in page and "1875.75" in page
    assert (await operator.get("/ops/parts?hours=nonsense", JSON)).status_code == 422
    detail = await operator.text(f"/ops/payments/{txn}")
    assert "Plan: deposit" in detail and 'id="parts"' in detail

    await sweep(settings, gateway_of(app), balance.due_at + timedelta(minutes=1))
    # Listed as missed for 7 days after its due time (`now` here is the real clock, before it).
    missed = await PaymentPart.get(id=balance.id)
    assert missed.status == "missed"
    await PaymentPart.filter(id=balance.id).update(due_at=missed.due_at - timedelta(days=27))
    (row,) = await parts_json(operator)
    assert (row["status"], row["seq"]) == ("missed", 2)
    dashboard = await operator.text("/ops")
    assert f"Booking {row['pnr']} cancelled for non-payment" in dashboard


async def test_dashboard_counts_parts_due_in_24_hours(app, operator, passenger):
    booking_id, _train = await deposit_paid(passenger)
    await PaymentPart.filter(booking_id=booking_id, seq=2).update(
        due_at=(await PaymentPart.get(booking_id=booking_id, seq=2)).due_at - timedelta(days=26.5)
    )
    dashboard = await operator.text("/ops")
    assert 'id="fig-parts-due"' in dashboard
    assert ">1</a>" in dashboard.split('id="fig-parts-due"')[1][:200]
    assert len(await parts_json(operator)) == 1
