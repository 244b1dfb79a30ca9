"""Refunds: passengers cancelled, refunds opened and settled, one transaction each.

A cancellation and the refund it owes commit together, `pending`, before the gateway is
asked; the gateway's answer (or its signed webhook) settles the refund later, and the
sweep asks about any refund still pending. A crash between the commit and the gateway
therefore loses no money, and the payment's `refunded_amount` is raised by a conditional
update that the database refuses past the amount paid, whatever runs at the same time.

The package, by step: `opening` (a passenger's quote and cancellation, and the refund
every way of cancelling opens), `handover` (the gateway asked, its verdict settled,
pending refunds reconciled), `console` (the console's refund, retry and offline
settlement), `spread` (refunds the system opens: in full, on departure, and spread over
the payments of a booking paid in parts). This module holds what they share: the rules in
force and a booking seen as a ticket.
"""

from __future__ import annotations

from functools import lru_cache

from railserve.bounds import REFUND_ID
from railserve.config import Settings
from railserve.display import format_money
from railserve.models import Booking, BookingStatus
from railserve.payment.models import Payment, PaymentStatus
from railserve.payment.rules import Quote, Rules, Ticket, capped, load_rules

REFUNDABLE = PaymentStatus.REFUNDABLE
HOLDING = BookingStatus.PAID
CARD_METHODS = ("credit_card", "debit_card")


def new_refund_id() -> str:
    return REFUND_ID.new()


@lru_cache(maxsize=8)
def _rules(path: str) -> Rules:
    return load_rules(path)


def rules_in_force(settings: Settings) -> Rules:
    return _rules(settings.refund_rules)


def expected_time(method: str) -> str:
    """When the money reaches the passenger, by how they paid."""
    return "6–7 business days" if str(method) in CARD_METHODS else "3–4 business days"


def ticket_of(booking: Booking, paid: bool) -> Ticket:
    return Ticket(
        passengers=tuple(booking.passengers),
        cancelled=frozenset(booking.cancelled_positions or ()),
        amount=booking.amount,
        currency=booking.currency,
        travel_class=str(booking.train.travel_class),
        departs_at=booking.train.departs_at,
        paid=paid,
        confirmed=booking.status == BookingStatus.CONFIRMED,
    )


def within_payments(offer: Quote, payments: list[Payment]) -> Quote:
    """The quote, capped by what earlier refunds left of the booking's payments (one, or
    each part's when it is paid in parts)."""
    refunded = sum(p.refunded_amount for p in payments)
    left = sum(p.amount for p in payments) - refunded
    return capped(offer, left, format_money(refunded, payments[0].currency))
