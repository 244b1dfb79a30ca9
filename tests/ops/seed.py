"""A seeded set of attempts with known answers, written straight to the database."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta

from railserve.models import Booking, BookingStatus, User
from railserve.payment.models import Payment, PaymentStatus
from tests.support.passenger import make_train

NOW = datetime.now(UTC)


async def user(email: str, name: str = "Seeded Person") -> User:
    return await User.create(name=name, email=email, password_hash="x")


async def booking(owner: User, pnr: str | None = None, amount: int = 125000) -> Booking:
    train = await make_train()
    return await Booking.create(
        pnr=pnr or secrets.token_hex(5).upper().replace("0", "A").replace("1", "B")[:10],
        user_id=owner.id,
        train_id=train.id,
        passengers=["Seeded Person"],
        passenger_count=1,
        amount=amount,
        status=BookingStatus.PENDING_PAYMENT,
    )


def txn() -> str:
    return "TXN" + uuid.uuid4().hex[:16].upper()


async def payment(
    owner: User,
    held: Booking,
    *,
    status: PaymentStatus = PaymentStatus.SUCCESS,
    method: str = "credit_card",
    gateway: str = "simulated",
    created_at: datetime | None = None,
    amount: int = 125000,
    transaction_id: str | None = None,
) -> Payment:
    created = created_at or NOW - timedelta(minutes=5)
    return await Payment.create(
        transaction_id=transaction_id or txn(),
        booking_id=held.id,
        user_id=owner.id,
        method=method,
        gateway=gateway,
        amount=amount,
        currency="INR",
        status=status,
        failure_reason="Card declined" if status == PaymentStatus.FAILED else None,
        instrument="Visa •••• 4242",
        idempotency_key=uuid.uuid4().hex,
        created_at=created,
        completed_at=None if status == PaymentStatus.PENDING else created + timedelta(seconds=2),
    )
