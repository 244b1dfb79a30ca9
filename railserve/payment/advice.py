"""A way forward after a failure: what kind of failure it was, and what to do next.

Failure reasons are the gateways' customer-safe words, stored on the attempt; this is the
one place that reads a kind from them, so the card and the status JSON say the same.
"""

from __future__ import annotations

from enum import StrEnum

from railserve.payment.models import PaymentStatus


class FailureKind(StrEnum):
    DECLINED = "declined"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    PROCESSING_ERROR = "processing_error"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    OTHER = "other"


# Lower-case fragments of a failure reason, checked in order: the first that occurs wins.
REASON_KINDS: tuple[tuple[str, FailureKind], ...] = (
    ("insufficient funds", FailureKind.INSUFFICIENT_FUNDS),
    ("card declined", FailureKind.DECLINED),
    ("declined by bank", FailureKind.DECLINED),
    ("account closed", FailureKind.DECLINED),
    ("processing error", FailureKind.PROCESSING_ERROR),
    ("gateway is unavailable", FailureKind.PROCESSING_ERROR),
    ("gateway did not answer", FailureKind.TIMED_OUT),
    ("timed out", FailureKind.TIMED_OUT),
    ("did not respond in time", FailureKind.TIMED_OUT),
    ("expired before it was approved", FailureKind.TIMED_OUT),
    ("cancelled", FailureKind.CANCELLED),
)

ADVICE: dict[FailureKind, str] = {
    FailureKind.DECLINED: "Your bank declined this payment. Pay with another card or by UPI.",
    FailureKind.INSUFFICIENT_FUNDS: (
        "There was not enough money for this payment. Choose another payment method."
    ),
    FailureKind.PROCESSING_ERROR: (
        "The payment gateway had a problem and nothing was charged. Try again in a minute."
    ),
    FailureKind.TIMED_OUT: (
        "We did not hear back in time. Check with your bank whether money left your account "
        "before paying again; if it did, it is reversed automatically in 5–7 business days."
    ),
    FailureKind.CANCELLED: "Nothing was charged. You can pay again while the booking is held.",
    FailureKind.OTHER: "Nothing was charged. Try again, or choose another payment method.",
}


def failure_kind(reason: str | None) -> FailureKind:
    text = (reason or "").lower()
    return next((kind for fragment, kind in REASON_KINDS if fragment in text), FailureKind.OTHER)


# The gateway took the money after the attempt had ended, and we give it back in full:
# "nothing was charged" would not be true.
MONEY_RETURNED = (
    "The payment went through after this attempt had ended, so the whole amount is being "
    "returned to you (see the refund). You can pay again while the booking is held."
)


def advice_for(status: str, reason: str | None, refunded: int = 0) -> str | None:
    """What to do next; None unless the attempt failed or was cancelled. `refunded`: how
    much of money taken anyway is being returned."""
    if status not in PaymentStatus.UNSUCCESSFUL:
        return None
    if refunded:
        return MONEY_RETURNED
    kind = failure_kind(reason)
    if status == "cancelled" and kind is FailureKind.OTHER:
        kind = FailureKind.CANCELLED
    return ADVICE[kind]
