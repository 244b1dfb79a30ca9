"""Payment attempts, their audit trail, seen webhook events and the simulator's ledger.

Two nullable unique columns let the database itself refuse what must never happen, on
SQLite and PostgreSQL alike: `pending_lock` holds the booking id while an attempt is
pending (one pending attempt per booking), `success_lock` holds it once an attempt has
succeeded (one success per booking, ever).
"""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class PaymentStatus(StrEnum):
    PENDING = "pending"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"


class PaymentMethod(StrEnum):
    CREDIT_CARD = "credit_card"
    DEBIT_CARD = "debit_card"
    NET_BANKING = "net_banking"
    UPI = "upi"
    WALLET = "wallet"

    @property
    def label(self) -> str:
        return METHOD_LABELS[self]

    @property
    def is_card(self) -> bool:
        return self in (PaymentMethod.CREDIT_CARD, PaymentMethod.DEBIT_CARD)


METHOD_LABELS = {
    PaymentMethod.CREDIT_CARD: "Credit card",
    PaymentMethod.DEBIT_CARD: "Debit card",
    PaymentMethod.NET_BANKING: "Net banking",
    PaymentMethod.UPI: "UPI",
    PaymentMethod.WALLET: "Wallet",
}


class Actor(StrEnum):
    USER = "user"
    GATEWAY = "gateway"
    SYSTEM = "system"


class Payment(Model):
    id = fields.IntField(primary_key=True)
    transaction_id = fields.CharField(max_length=19, unique=True)
    booking: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "railserve.Booking", related_name="payments", on_delete=fields.RESTRICT
    )
    user: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "railserve.User", related_name="payments", on_delete=fields.RESTRICT
    )
    method = fields.CharEnumField(PaymentMethod, max_length=20)
    amount = fields.BigIntField()
    currency = fields.CharField(max_length=3, default="INR")
    status = fields.CharEnumField(PaymentStatus, max_length=20, default=PaymentStatus.PENDING)
    failure_reason = fields.CharField(max_length=200, null=True)
    retryable = fields.BooleanField(null=True)
    instrument = fields.CharField(max_length=80)
    idempotency_key = fields.CharField(max_length=64)
    pending_lock = fields.IntField(null=True, unique=True)
    success_lock = fields.IntField(null=True, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    completed_at = fields.DatetimeField(null=True)
    refund_reference = fields.CharField(max_length=40, null=True)
    refunded_at = fields.DatetimeField(null=True)

    booking_id: int
    user_id: int

    class Meta:
        table = "payments"
        unique_together = (("user_id", "idempotency_key"),)
        indexes = [("booking_id", "created_at"), ("status", "created_at")]


class PaymentEvent(Model):
    """The audit trail: written with the change it records, never updated or deleted."""

    id = fields.IntField(primary_key=True)
    payment: fields.ForeignKeyRelation[Payment] = fields.ForeignKeyField(
        "railserve.Payment", related_name="events", on_delete=fields.RESTRICT
    )
    from_status = fields.CharField(max_length=20, null=True)
    to_status = fields.CharField(max_length=20)
    event = fields.CharField(max_length=40)
    actor = fields.CharEnumField(Actor, max_length=10)
    detail = fields.CharField(max_length=300, default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    payment_id: int

    class Meta:
        table = "payment_events"
        ordering = ["id"]


class WebhookEvent(Model):
    """Gateway event ids already applied: a replay is acknowledged without effect."""

    id = fields.CharField(max_length=64, primary_key=True)
    type = fields.CharField(max_length=40)
    transaction_id = fields.CharField(max_length=19)
    received_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "webhook_events"


class SimulatedCharge(Model):
    """The simulated gateway's own ledger, as a real gateway keeps one on its side.

    It lets the gateway answer "what happened to this charge?" after our process died,
    and makes refunds idempotent. It holds outcomes only, never card data.
    """

    transaction_id = fields.CharField(max_length=19, primary_key=True)
    amount = fields.BigIntField()
    currency = fields.CharField(max_length=3)
    succeeded = fields.BooleanField()
    failure_code = fields.CharField(max_length=40, null=True)
    settles_at = fields.DatetimeField()
    refund_reference = fields.CharField(max_length=40, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "simulated_charges"
