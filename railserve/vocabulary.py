"""The words a person reads for each stored value: one place, in sentence case.

Statuses, methods, classes of travel, actors and kinds of refund are stored as codes
(`partially_refunded`, `credit_card`, `3A`); every page, partial and message that shows one
asks here, so the same value reads the same everywhere ("Partly refunded", "Credit card",
"AC 3 Tier (3A)"). Templates reach these through the filters `install` registers.
"""

from __future__ import annotations

from enum import Enum

from jinja2 import Environment

from railserve import bounds, display
from railserve.models import BookingStatus
from railserve.payment.models import PaymentStatus, RefundStatus

# One word per stored value. Values shared by several enums (pending, failed, cancelled)
# read the same in each, which is why one table serves them all.
LABELS: dict[str, str] = {
    # payment attempts
    "pending": "Pending",
    "success": "Successful",
    "failed": "Failed",
    "cancelled": "Cancelled",
    "partially_refunded": "Partly refunded",
    "refunded": "Refunded",
    # refunds
    "succeeded": "Succeeded",
    # bookings
    "pending_payment": "Awaiting payment",
    "confirmed": "Confirmed",
    "waitlisted": "Waitlisted",
    "expired": "Expired",
    # methods
    "credit_card": "Credit card",
    "debit_card": "Debit card",
    "net_banking": "Net banking",
    "upi": "UPI",
    "wallet": "Wallet",
    # actors
    "user": "Passenger",
    "gateway": "Gateway",
    "system": "System",
    "operator": "Operator",
    # lifecycle events (PaymentMachine) and audit events
    "start": "Started",
    "succeed": "Succeeded",
    "fail": "Failed",
    "cancel": "Cancelled",
    "refund_part": "Partly refunded",
    "refund": "Refunded",
    "webhook_rejected": "Webhook refused",
    # operator actions
    "reconcile": "Reconciled",
    "replay": "Webhook replayed",
    # reconciliation differences
    "captured_not_shown": "Captured, not shown as paid",
    "missing_capture": "Paid here, not captured",
    "refund_only_ours": "Refund only in our records",
    "refund_only_gateway": "Refund only at the gateway",
    "amount": "Amounts differ",
}

# What an operator did (the audit's "What"); a refused one reads "Refund (refused)".
ACTIONS: dict[str, str] = {
    "refund": "Refund",
    "cancel": "Cancel the attempt",
    "reconcile": "Reconcile",
    "replay": "Replay a webhook",
    "refund_retry": "Retry a failed refund",
    "offline": "Refund settled offline",
}

# Classes of travel: the code a ticket carries, with the name a person knows.
TRAVEL_CLASSES: dict[str, str] = {
    "1A": "AC First Class",
    "EC": "Executive Chair Car",
    "2A": "AC 2 Tier",
    "FC": "First Class",
    "3A": "AC 3 Tier",
    "3E": "AC 3 Tier Economy",
    "CC": "AC Chair Car",
    "SL": "Sleeper",
    "2S": "Second Sitting",
}

# What kind of refund a passenger or an operator is looking at.
REFUND_KINDS: dict[str, str] = {
    "cancellation": "Cancellation refund",
    "operator": "Refund by our team",
    "automatic": "Automatic refund",
}


def _code(value: object) -> str:
    return str(value.value if isinstance(value, Enum) else value)


def label(value: object) -> str:
    """The sentence-case words for a stored code; an unknown code loses its underscores."""
    if value is None:
        return "—"
    code = _code(value)
    found = LABELS.get(code)
    if found is not None:
        return found
    words = code.replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def phrase(value: object) -> str:
    """The label inside a sentence: lower case, except a name such as UPI."""
    words = label(value)
    if len(words) > 1 and words[1].isupper():
        return words
    return words[:1].lower() + words[1:]


def action(value: object) -> str:
    """An operator action as the audit names it: "Refund", "Refund (refused)"."""
    code = _code(value)
    name, _, refused = code.partition(" ")
    words = ACTIONS.get(name, label(name))
    return f"{words} ({refused})" if refused else words


def travel_class(value: object) -> str:
    """ "AC 3 Tier (3A)" for 3A: the class's name with its code."""
    code = _code(value)
    name = TRAVEL_CLASSES.get(code)
    return f"{name} ({code})" if name else code


def refund_kind(refund: object) -> str:
    """What kind of refund this is, from who made it and what it kept back."""
    actor = _code(getattr(refund, "actor", ""))
    if actor == "operator":
        return REFUND_KINDS["operator"]
    if actor == "user":
        return REFUND_KINDS["cancellation"]
    return REFUND_KINDS["automatic"]


def install(env: Environment) -> None:
    """Register the vocabulary's filters on a Jinja environment."""
    env.filters["label"] = label
    env.filters["phrase"] = phrase
    env.filters["travel_class"] = travel_class
    env.filters["action"] = action
    env.filters["refund_kind"] = refund_kind
    env.filters["local"] = display.format_local
    env.globals["zone_name"] = display.zone_name
    # The status groups, so templates test membership by name, never by listing values.
    env.globals["BookingStatus"] = BookingStatus
    env.globals["PaymentStatus"] = PaymentStatus
    env.globals["RefundStatus"] = RefundStatus
    # Field lengths for minlength/maxlength, the same the forms check.
    env.globals["bounds"] = bounds
