"""The database's promises, checked by reading it: `railserve check` and the tests use it."""

from __future__ import annotations

from collections import Counter, defaultdict

from railserve.models import Booking, BookingStatus, Train
from railserve.payment.models import (
    PartStatus,
    Payment,
    PaymentEvent,
    PaymentPart,
    PaymentStatus,
    Refund,
    RefundStatus,
)
from railserve.payment.plans import FULL
from railserve.payment.providers.router import Gateways, configured

PAID = PaymentStatus.CAPTURED
CAPTURED = PaymentStatus.REFUNDABLE
HOLDING = BookingStatus.PAID


async def violations(gateways: Gateways | None = None) -> list[str]:
    """Every broken invariant, one readable line each; empty when all hold. The refunds
    are checked against each configured provider's ledger (`gateways`: see
    railserve.payment.providers.router.configured)."""
    problems: list[str] = []
    payments = await Payment.all().values(
        "id",
        "transaction_id",
        "booking_id",
        "status",
        "pending_lock",
        "amount",
        "refunded_amount",
        "part_id",
    )
    bookings = {
        b["id"]: b
        for b in await Booking.all().values(
            "id",
            "pnr",
            "train_id",
            "status",
            "passenger_count",
            "paid_at",
            "passengers",
            "cancelled_positions",
            "plan",
            "amount",
        )
    }
    paid_per_booking: Counter[int] = Counter()
    success_per_booking: Counter[int] = Counter()
    pending_per_booking: Counter[int] = Counter()
    for p in payments:
        if p["status"] in PAID and p["part_id"] is None:
            paid_per_booking[p["booking_id"]] += 1
        if p["status"] in CAPTURED and p["part_id"] is None:
            success_per_booking[p["booking_id"]] += 1
        if p["status"] == PaymentStatus.PENDING:
            pending_per_booking[p["booking_id"]] += 1
            if p["pending_lock"] != p["booking_id"]:
                problems.append(f"pending payment {p['transaction_id']} does not hold its lock")
    for booking_id, count in paid_per_booking.items():
        if count > 1:
            pnr = bookings[booking_id]["pnr"]
            problems.append(f"booking {pnr} has {count} successful payments")
    for booking_id, count in pending_per_booking.items():
        if count > 1:
            problems.append(f"booking {bookings[booking_id]['pnr']} has {count} pending attempts")
    for booking in bookings.values():
        on_full = booking["plan"] == FULL
        if on_full and booking["status"] in HOLDING and success_per_booking[booking["id"]] != 1:
            problems.append(
                f"booking {booking['pnr']} is {booking['status']} with "
                f"{success_per_booking[booking['id']]} successful payments (expected 1)"
            )
    problems += await _seat_problems(bookings)
    problems += await _audit_problems(payments)
    problems += _waitlist_problems(bookings)
    problems += _passenger_problems(bookings)
    problems += await _refund_problems(payments, gateways)
    problems += await _part_problems(payments, bookings)
    return problems


async def _part_problems(payments: list[dict], bookings: dict[int, dict]) -> list[str]:
    """Paying in parts: the parts add up to the amount, each paid part has exactly one
    successful attempt of its amount, a held booking has its first part paid, and a
    booking's refunds never exceed what its payments took."""
    problems = []
    parts = await PaymentPart.all().values("id", "booking_id", "seq", "amount", "status")
    successes: defaultdict[int, list[dict]] = defaultdict(list)
    for p in payments:
        if p["part_id"] is not None and p["status"] in PAID:
            successes[p["part_id"]].append(p)
    by_booking: defaultdict[int, list[dict]] = defaultdict(list)
    for part in parts:
        by_booking[part["booking_id"]].append(part)
        if len(successes[part["id"]]) > 1:
            pnr = bookings[part["booking_id"]]["pnr"]
            problems.append(
                f"booking {pnr} part {part['seq']} has {len(successes[part['id']])} successful attempts"
            )
        if part["status"] == PartStatus.PAID and [p["amount"] for p in successes[part["id"]]] != [
            part["amount"]
        ]:
            pnr = bookings[part["booking_id"]]["pnr"]
            problems.append(
                f"booking {pnr} part {part['seq']} is paid without one attempt of its amount"
            )
    for booking in bookings.values():
        if booking["plan"] == FULL:
            continue
        mine = by_booking[booking["id"]]
        if sum(part["amount"] for part in mine) != booking["amount"]:
            problems.append(f"booking {booking['pnr']}: its parts do not add up to its amount")
        first = next((part for part in mine if part["seq"] == 1), None)
        if booking["status"] in HOLDING and (first is None or first["status"] != PartStatus.PAID):
            problems.append(f"booking {booking['pnr']} is {booking['status']} without part 1 paid")
    taken: Counter[int] = Counter()
    returned: Counter[int] = Counter()
    for p in payments:
        if p["status"] in PAID:  # (money captured for a cancelled attempt: checked above)
            taken[p["booking_id"]] += p["amount"]
            returned[p["booking_id"]] += p["refunded_amount"]
    for booking_id, amount in returned.items():
        if amount > taken[booking_id]:
            pnr = bookings[booking_id]["pnr"]
            problems.append(f"booking {pnr} refunds {amount}, more than its payments took")
    return problems


def _passenger_problems(bookings: dict[int, dict]) -> list[str]:
    """A cancelled passenger holds no seat: the head count is the passengers not cancelled."""
    problems = []
    for b in bookings.values():
        cancelled = set(b["cancelled_positions"] or ())
        if not cancelled <= set(range(1, len(b["passengers"]) + 1)):
            problems.append(f"booking {b['pnr']} cancels passengers it does not have")
        holding = len(b["passengers"]) - len(cancelled)
        if b["status"] in HOLDING and b["passenger_count"] != holding:
            problems.append(
                f"booking {b['pnr']} counts {b['passenger_count']} passengers but "
                f"{holding} are not cancelled"
            )
    return problems


async def _refund_problems(payments: list[dict], gateways: Gateways | None) -> list[str]:
    """Refunds never exceed their payment, and agree with the gateway's ledger both ways."""
    problems = []
    refunds = await Refund.all().values(
        "refund_id", "payment_id", "amount", "status", "offline_reference"
    )
    total: Counter[int] = Counter()
    for r in refunds:
        if r["status"] != RefundStatus.FAILED:  # money not returned is not refunded
            total[r["payment_id"]] += r["amount"]
    for p in payments:
        if total[p["id"]] > p["amount"]:
            problems.append(
                f"payment {p['transaction_id']} refunds {total[p['id']]} of {p['amount']} paid"
            )
        if total[p["id"]] != p["refunded_amount"]:
            problems.append(
                f"payment {p['transaction_id']} records {p['refunded_amount']} refunded but its "
                f"refunds add up to {total[p['id']]}"
            )
    # Each provider's ledger: the latest attempt of each refund it was asked for.
    ledger: dict[str, dict] = {}
    for entry in await configured(gateways).ledger():
        if entry.refund_id is not None:
            ledger[entry.refund_id] = {"succeeded": entry.succeeded, "amount": entry.amount}
    ours = {r["refund_id"]: r for r in refunds}
    for refund_id, row in ledger.items():
        if refund_id not in ours:
            problems.append(f"the gateway refunded {refund_id}, which we have no record of")
        elif ours[refund_id]["amount"] != row["amount"]:
            problems.append(f"refund {refund_id}: amount differs from the gateway's")
    for r in refunds:
        row = ledger.get(r["refund_id"])
        offline = r["offline_reference"] is not None  # returned outside the gateway
        if (
            r["status"] == RefundStatus.SUCCEEDED
            and r["amount"]
            and not offline
            and not (row and row["succeeded"])
        ):
            problems.append(f"refund {r['refund_id']} is succeeded but the gateway did not pay it")
        if r["status"] == RefundStatus.FAILED and row and row["succeeded"]:
            problems.append(f"refund {r['refund_id']} is failed but the gateway paid it")
    return problems


async def _seat_problems(bookings: dict[int, dict]) -> list[str]:
    problems = []
    confirmed: Counter[int] = Counter()
    for booking in bookings.values():
        if booking["status"] == BookingStatus.CONFIRMED:
            confirmed[booking["train_id"]] += booking["passenger_count"]
    for train in await Train.all().values("id", "number", "total_seats", "seats_left"):
        expected = train["total_seats"] - confirmed[train["id"]]
        if train["seats_left"] < 0:
            problems.append(f"train {train['number']} has {train['seats_left']} seats left")
        if train["seats_left"] != expected:
            problems.append(
                f"train {train['number']}: seats left {train['seats_left']}, but total "
                f"{train['total_seats']} − confirmed {confirmed[train['id']]} = {expected}"
            )
    return problems


async def _audit_problems(payments: list[dict]) -> list[str]:
    """Each payment's status changes must chain from nothing to its current status."""
    problems = []
    chains: dict[int, list[tuple[str | None, str]]] = defaultdict(list)
    for event in (
        await PaymentEvent.all().order_by("id").values("payment_id", "from_status", "to_status")
    ):
        if event["from_status"] != event["to_status"]:
            chains[event["payment_id"]].append((event["from_status"], event["to_status"]))
    for p in payments:
        chain = chains.get(p["id"], [])
        status = None
        for source, target in chain:
            if source != status:
                problems.append(
                    f"payment {p['transaction_id']}: audit event {source}→{target} "
                    f"does not follow {status}"
                )
            status = target
        if status != p["status"]:
            problems.append(
                f"payment {p['transaction_id']} is {p['status']} but its audit trail ends at "
                f"{status}"
            )
    return problems


def _waitlist_problems(bookings: dict[int, dict]) -> list[str]:
    # Positions are derived from (paid_at, id), so they cannot repeat or leave gaps as
    # long as every waitlisted booking has its payment time.
    return [
        f"waitlisted booking {b['pnr']} has no payment time, so no waitlist position"
        for b in bookings.values()
        if b["status"] == BookingStatus.WAITLISTED and b["paid_at"] is None
    ]
