"""Passengers, trains, bookings and what is sent to passengers.

Models hold data only: every change of a booking's status or a train's seats is made by
the booking service with a conditional update, never by saving a row read earlier.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class BookingStatus(StrEnum):
    PENDING_PAYMENT = "pending_payment"
    CONFIRMED = "confirmed"
    WAITLISTED = "waitlisted"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class Role(StrEnum):
    PASSENGER = "passenger"
    OPERATOR = "operator"


class TravelClass(StrEnum):
    """Indian Railways classes of travel; the cancellation charges depend on them."""

    FIRST_AC = "1A"
    EXECUTIVE_CHAIR = "EC"
    SECOND_AC = "2A"
    FIRST_CLASS = "FC"
    THIRD_AC = "3A"
    THIRD_AC_ECONOMY = "3E"
    CHAIR_CAR = "CC"
    SLEEPER = "SL"
    SECOND_SITTING = "2S"


class User(Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=60)
    email = fields.CharField(max_length=254, unique=True)
    password_hash = fields.CharField(max_length=255)
    role = fields.CharEnumField(Role, max_length=10, default=Role.PASSENGER, db_default="passenger")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "users"


class Train(Model):
    id = fields.IntField(primary_key=True)
    number = fields.CharField(max_length=10, unique=True)
    name = fields.CharField(max_length=80)
    origin = fields.CharField(max_length=80)
    destination = fields.CharField(max_length=80)
    departs_at = fields.DatetimeField()
    total_seats = fields.IntField()
    seats_left = fields.IntField()
    fare = fields.BigIntField()
    currency = fields.CharField(max_length=3, default="INR")
    travel_class = fields.CharEnumField(
        TravelClass, max_length=2, default=TravelClass.THIRD_AC, db_default="3A"
    )
    # Set by `railserve cancel-train`: the railway cancelled the run; no new bookings.
    cancelled_at = fields.DatetimeField(null=True)
    cancellation_reason = fields.CharField(max_length=300, null=True)

    class Meta:
        table = "trains"
        ordering = ["departs_at", "number"]


TRAIN_DEPARTED = "This train has departed."
TRAIN_CANCELLED = "This train is cancelled."


def closed_reason(train: Train, now: datetime) -> str | None:
    """Why `train` takes no more bookings or payments (None while it does)."""
    if train.cancelled_at is not None:
        return TRAIN_CANCELLED
    if train.departs_at <= now:
        return TRAIN_DEPARTED
    return None


class Booking(Model):
    id = fields.IntField(primary_key=True)
    pnr = fields.CharField(max_length=10, unique=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "railserve.User", related_name="bookings", on_delete=fields.RESTRICT
    )
    train: fields.ForeignKeyRelation[Train] = fields.ForeignKeyField(
        "railserve.Train", related_name="bookings", on_delete=fields.RESTRICT
    )
    # Every passenger ever booked, in order; positions (1-based) never change.
    passengers = fields.JSONField()
    # Passengers still booked: drops as some are cancelled (seats are counted by it).
    passenger_count = fields.IntField()
    # 1-based positions in `passengers` that were cancelled (kept in history).
    cancelled_positions = fields.JSONField(default=list, db_default="[]")
    amount = fields.BigIntField()
    currency = fields.CharField(max_length=3, default="INR")
    status = fields.CharEnumField(
        BookingStatus, max_length=20, default=BookingStatus.PENDING_PAYMENT
    )
    created_at = fields.DatetimeField(auto_now_add=True)
    # When the payment succeeded: the waitlist is ordered by it.
    paid_at = fields.DatetimeField(null=True)
    # The payment plan ("Paying in parts"): `full`, or a plan whose parts are rows of
    # `payment_parts`, chosen until the first part is paid (`plan_fixed_at`), fixed after.
    plan = fields.CharField(max_length=32, default="full", db_default="full")
    plan_fixed_at = fields.DatetimeField(null=True)
    updated_at = fields.DatetimeField(auto_now=True)

    user_id: int
    train_id: int

    @property
    def active_passengers(self) -> list[str]:
        """Passengers still booked (cancelled ones stay in `passengers` for history)."""
        cancelled = set(self.cancelled_positions or ())
        return [name for i, name in enumerate(self.passengers, 1) if i not in cancelled]

    class Meta:
        table = "bookings"
        indexes = [("train_id", "status", "paid_at"), ("status", "created_at")]


class Notification(Model):
    id = fields.IntField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "railserve.User", related_name="notifications", on_delete=fields.CASCADE
    )
    booking: fields.ForeignKeyNullableRelation[Booking] = fields.ForeignKeyField(
        "railserve.Booking", related_name="notifications", null=True, on_delete=fields.SET_NULL
    )
    kind = fields.CharField(max_length=20)
    message = fields.CharField(max_length=300)
    read = fields.BooleanField(default=False)
    created_at = fields.DatetimeField(auto_now_add=True)

    user_id: int

    class Meta:
        table = "notifications"
        indexes = [("user_id", "read")]


class Mail(Model):
    """The outbox: every mail the app sends, shown to the user as "sent mail"."""

    id = fields.IntField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "railserve.User", related_name="mails", on_delete=fields.CASCADE
    )
    booking: fields.ForeignKeyNullableRelation[Booking] = fields.ForeignKeyField(
        "railserve.Booking", related_name="mails", null=True, on_delete=fields.SET_NULL
    )
    to_address = fields.CharField(max_length=254)
    subject = fields.CharField(max_length=200)
    body = fields.TextField()
    created_at = fields.DatetimeField(auto_now_add=True)
    delivered_at = fields.DatetimeField(null=True)
    # Delivery: a sender claims the mail (claimed_at) before sending it; a failure counts
    # an attempt and sets when to try again; after the last attempt the mail is failed.
    attempts = fields.IntField(null=True)
    claimed_at = fields.DatetimeField(null=True)
    next_attempt_at = fields.DatetimeField(null=True)
    failed_at = fields.DatetimeField(null=True)
    last_error = fields.CharField(max_length=300, null=True)

    user_id: int

    class Meta:
        table = "mails"
