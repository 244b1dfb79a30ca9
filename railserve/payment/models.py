"""Payment attempts, their audit trail, seen webhook events and the simulator's ledger.

Two nullable unique columns let the database itself refuse what must never happen, on
SQLite and PostgreSQL alike: `pending_lock` holds the booking id while an attempt is
pending (one pending attempt per booking), `success_lock` holds it once an attempt has
succeeded (one success per booking, ever). A booking paid in parts has one success per
part instead: its attempts' `part_success_lock` holds the part's id once they succeed.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from tortoise import fields
from tortoise.models import Model

from railserve.bounds import REFERENCE, TEXT_COLUMN
from railserve.running import with_request_id


class PaymentStatus(StrEnum):
    PENDING = "pending"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"

    # Groups, each defined here only (set below, once the members exist); a test holds
    # them to what PaymentMachine allows.
    REFUNDABLE: ClassVar[tuple[PaymentStatus, ...]]  # holds money: `refund` is allowed
    CAPTURED: ClassVar[tuple[PaymentStatus, ...]]  # money was taken (a receipt exists)
    UNSUCCESSFUL: ClassVar[tuple[PaymentStatus, ...]]  # ended without taking money
    NOT_CAPTURED: ClassVar[tuple[PaymentStatus, ...]]  # no money taken, yet or ever
    FINAL: ClassVar[tuple[PaymentStatus, ...]]  # no move leaves it


PaymentStatus.REFUNDABLE = (PaymentStatus.SUCCESS, PaymentStatus.PARTIALLY_REFUNDED)
PaymentStatus.CAPTURED = (*PaymentStatus.REFUNDABLE, PaymentStatus.REFUNDED)
PaymentStatus.UNSUCCESSFUL = (PaymentStatus.FAILED, PaymentStatus.CANCELLED)
PaymentStatus.NOT_CAPTURED = (*PaymentStatus.UNSUCCESSFUL, PaymentStatus.PENDING)
PaymentStatus.FINAL = (*PaymentStatus.UNSUCCESSFUL, PaymentStatus.REFUNDED)


class RefundStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    OPEN: ClassVar[tuple[RefundStatus, ...]]  # money not yet returned: not final


RefundStatus.OPEN = (RefundStatus.PENDING, RefundStatus.FAILED)


class PartStatus(StrEnum):
    DUE = "due"
    PAID = "paid"  # and still paid after a refund
    MISSED = "missed"  # its due time passed unpaid (and those after it): cancelled for it
    CANCELLED = "cancelled"  # still due when the booking was cancelled otherwise


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
    OPERATOR = "operator"


class PaymentPart(Model):
    """One part of a booking paid on a plan ("Paying in parts"): its amount and due time
    are written when an attempt for the first part starts and fixed once it is paid."""

    id = fields.IntField(primary_key=True)
    booking: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "railserve.Booking", related_name="parts", on_delete=fields.RESTRICT
    )
    seq = fields.IntField()  # 1-based
    of = fields.IntField()
    amount = fields.BigIntField()
    currency = fields.CharField(max_length=3, default="INR")
    due_at = fields.DatetimeField(null=True)  # None for the first part, paid now
    status = fields.CharEnumField(PartStatus, max_length=10, default=PartStatus.DUE)
    # How many of the plan's reminders (in time order) are done with, sent or passed over:
    # the sweep claims the next with a compare-and-set of this count, so each goes once
    # across sweeps and workers.
    reminders_sent = fields.IntField(default=0, db_default=0)
    paid_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    booking_id: int

    class Meta:
        table = "payment_parts"
        ordering = ["booking_id", "seq"]
        unique_together = (("booking_id", "seq"),)
        indexes = [("status", "due_at")]


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
    # The provider that took the attempt (RAILSERVE_GATEWAY_ROUTES); refunds and
    # reconciliation ask this one.
    gateway = fields.CharField(max_length=20, default="simulated", db_default="simulated")
    amount = fields.BigIntField()
    currency = fields.CharField(max_length=3, default="INR")
    # Sum of this payment's refunds, raised by a conditional update that refuses to pass
    # `amount`: the database, not a read-then-check, keeps refunds within the payment.
    refunded_amount = fields.BigIntField(default=0, db_default=0)
    status = fields.CharEnumField(PaymentStatus, max_length=20, default=PaymentStatus.PENDING)
    failure_reason = fields.CharField(max_length=200, null=True)
    retryable = fields.BooleanField(null=True)
    instrument = fields.CharField(max_length=80)
    idempotency_key = fields.CharField(max_length=64)
    pending_lock = fields.IntField(null=True, unique=True)
    success_lock = fields.IntField(null=True, unique=True)
    # The part this attempt pays (None on `full`), and its id once the attempt succeeded:
    # the per-part form of `success_lock` for a booking paid in parts.
    part: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "railserve.PaymentPart", related_name="payments", null=True, on_delete=fields.RESTRICT
    )
    part_success_lock = fields.IntField(null=True, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    completed_at = fields.DatetimeField(null=True)

    booking_id: int
    user_id: int
    part_id: int | None

    class Meta:
        table = "payments"
        unique_together = (("user_id", "idempotency_key"),)
        indexes = [
            ("booking_id", "created_at"),
            ("status", "created_at"),
            ("method", "created_at"),
            ("gateway", "created_at"),
            ("created_at",),
        ]


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
    detail = fields.CharField(max_length=TEXT_COLUMN, default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    payment_id: int

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.detail = with_request_id(self.detail)  # made here, in the request's context

    class Meta:
        table = "payment_events"
        ordering = ["id"]


class Refund(Model):
    """One refund of a payment: written `pending` with the cancellation that causes it,
    before the gateway is asked; the gateway's answer or webhook settles it."""

    id = fields.IntField(primary_key=True)
    refund_id = fields.CharField(max_length=19, unique=True)
    payment: fields.ForeignKeyRelation[Payment] = fields.ForeignKeyField(
        "railserve.Payment", related_name="refunds", on_delete=fields.RESTRICT
    )
    # 1-based passenger positions this refund covers (empty for an operator's goodwill).
    passengers = fields.JSONField(default=list)
    amount = fields.BigIntField()
    charge = fields.BigIntField(default=0)
    gst = fields.BigIntField(default=0)
    currency = fields.CharField(max_length=3, default="INR")
    reason = fields.CharField(max_length=TEXT_COLUMN, default="")
    actor = fields.CharEnumField(Actor, max_length=10)
    operator: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "railserve.User", related_name="refunds_made", null=True, on_delete=fields.RESTRICT
    )
    status = fields.CharEnumField(RefundStatus, max_length=10, default=RefundStatus.PENDING)
    gateway_reference = fields.CharField(max_length=40, null=True)
    # How many times the gateway has been asked; refusals past RAILSERVE_REFUND_ATTEMPTS
    # leave it failed for an operator.
    attempts = fields.IntField(default=0)
    failure_reason = fields.CharField(max_length=200, null=True)
    # Gateway attempts made before an operator's last retry: the refusals counted against
    # RAILSERVE_REFUND_ATTEMPTS start afresh, while (refund_id, attempt) stays unique.
    retried_attempts = fields.IntField(null=True)
    # Money returned outside the gateway (a bank transfer, say) by an operator: its
    # reference. Reconciliation lists such refunds apart, not as differences.
    offline_reference = fields.CharField(max_length=REFERENCE.max, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    settled_at = fields.DatetimeField(null=True)

    payment_id: int
    operator_id: int | None

    @property
    def tries(self) -> int:
        """Gateway attempts since the refund was opened or an operator last retried it."""
        return self.attempts - (self.retried_attempts or 0)

    class Meta:
        table = "refunds"
        ordering = ["id"]
        indexes = [("status", "updated_at"), ("payment_id", "id")]


class WebhookEvent(Model):
    """Gateway event ids already applied: a replay is acknowledged without effect."""

    id = fields.CharField(max_length=64, primary_key=True)
    type = fields.CharField(max_length=40)
    transaction_id = fields.CharField(max_length=19)
    received_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "webhook_events"


class WebhookLog(Model):
    """Every gateway event received, valid or not, with the answer we gave (operators)."""

    id = fields.IntField(primary_key=True)
    provider = fields.CharField(max_length=20)
    event_id = fields.CharField(max_length=64, null=True)
    type = fields.CharField(max_length=40, null=True)
    transaction_id = fields.CharField(max_length=19, null=True)
    signature_valid = fields.BooleanField()
    status_code = fields.IntField()
    result = fields.CharField(max_length=TEXT_COLUMN, default="")
    # The raw body (capped at 64 KiB like every request body) and the signature header,
    # kept so that an operator can replay a validly signed event through the same handler.
    body = fields.TextField()
    signature = fields.CharField(max_length=1000, null=True)
    received_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "webhook_log"
        indexes = [("received_at",), ("transaction_id", "received_at"), ("event_id",)]


class OperatorAction(Model):
    """What an operator did and why: written with the action, never updated or deleted."""

    id = fields.IntField(primary_key=True)
    operator: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "railserve.User", related_name="operator_actions", on_delete=fields.RESTRICT
    )
    action = fields.CharField(max_length=20)
    transaction_id = fields.CharField(max_length=19, null=True)
    reason = fields.CharField(max_length=TEXT_COLUMN)
    detail = fields.CharField(max_length=TEXT_COLUMN, default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    operator_id: int

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.detail = with_request_id(self.detail)  # made here, in the request's context

    class Meta:
        table = "operator_actions"
        ordering = ["-id"]
        indexes = [("created_at",)]


class LiveChange(Model):
    """A change to an attempt or its booking, for the event streams of other workers
    (SQLite: one query per worker, not per stream; PostgreSQL uses NOTIFY instead)."""

    id = fields.BigIntField(primary_key=True)
    transaction_id = fields.CharField(max_length=19)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "live_changes"
        indexes = [("created_at",)]
