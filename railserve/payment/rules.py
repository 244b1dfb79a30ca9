"""Cancellation charges as data, and the one pure function that quotes a cancellation.

The defaults follow the Indian Railways (Cancellation of Passenger Tickets and Refund of
Fare) Rules, 2015. The windows move (charts are now prepared about 8 h before departure,
and newer trains use 72 h / 8 h), so they are data: `RAILSERVE_REFUND_RULES` may name a
TOML file that replaces them (see `DEFAULT_RULES_TOML` for its shape).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from babel.numbers import get_currency_precision

from railserve.errors import Invalid

CHART_PREPARED = "The chart is prepared: this ticket can no longer be cancelled online."

DEFAULT_RULES_TOML = """
# Cancellation charges per passenger. Amounts are in major units of the train's currency.
[flat_charge]          # confirmed tickets cancelled well before departure
1A = "240"
EC = "240"
2A = "200"
FC = "200"
3A = "180"
CC = "180"
3E = "180"
SL = "120"
2S = "60"

# Confirmed tickets, first matching window wins: at least `hours` before departure
# (more than, when `strictly` is true), a `percent` of the fare with the flat charge as a
# floor (0 % means the flat charge alone).
[[window]]
hours = 48
strictly = true
percent = 0

[[window]]
hours = 12
percent = 25

[[window]]
hours = 4
percent = 50

# Past the last window the chart is prepared: no online cancellation.

[waitlist]             # paid but not confirmed
clerkage = "60"
until_minutes = 30     # no online cancellation closer to departure than this

[gst]
percent = 5
classes = ["1A", "EC", "2A", "FC", "3A", "3E", "CC"]

# The flat charges and the clerkage above are amounts in INR. A train priced in another
# currency bears the percentages only (no flat charge, no floor, no clerkage) unless its
# currency is given amounts of its own, for instance:
# [currency.USD]
# clerkage = "1"
# flat_charge = { 1A = "3", 3A = "2.50" }
"""

RULES_CURRENCY = "INR"  # the currency of the top-level flat charges and clerkage


@dataclass(frozen=True)
class Window:
    hours: float
    percent: Decimal
    strictly: bool = False

    def covers(self, left: timedelta) -> bool:
        bound = timedelta(hours=self.hours)
        return left > bound if self.strictly else left >= bound

    def describe(self, flat: bool = True) -> str:
        """The window in words; `flat`: whether the train's currency has flat charges."""
        when = f"{'more than' if self.strictly else 'at least'} {self.hours:g} h before departure"
        if not self.percent:
            what = "flat charge" if flat else "no charge (no flat charge in this currency)"
            return f"Confirmed ticket cancelled {when}: {what} per passenger"
        floor = ", at least the flat charge" if flat else ""
        return f"Confirmed ticket cancelled {when}: {self.percent:g} % of the fare per passenger{floor}"


@dataclass(frozen=True)
class Rules:
    flat_charge: dict[str, Decimal]
    windows: tuple[Window, ...]
    clerkage: Decimal
    waitlist_until: timedelta
    gst_percent: Decimal
    gst_classes: frozenset[str] = field(default_factory=frozenset)
    # Other currencies' own amounts: currency -> (flat charge by class, clerkage).
    other_amounts: dict[str, tuple[dict[str, Decimal], Decimal]] = field(default_factory=dict)

    @property
    def chart_hours(self) -> float:
        return self.windows[-1].hours

    def amounts(self, currency: str) -> tuple[dict[str, Decimal], Decimal]:
        """Flat charges and clerkage in `currency` (major units); none unless given."""
        if currency == RULES_CURRENCY:
            return self.flat_charge, self.clerkage
        return self.other_amounts.get(currency, ({}, Decimal(0)))


def parse_rules(text: str) -> Rules:
    """Rules from TOML text; ValueError naming what is wrong."""
    try:
        data = tomllib.loads(text)
        windows = tuple(
            Window(float(w["hours"]), Decimal(str(w["percent"])), bool(w.get("strictly", False)))
            for w in data["window"]
        )
        rules = Rules(
            flat_charge={k: Decimal(str(v)) for k, v in data["flat_charge"].items()},
            windows=windows,
            clerkage=Decimal(str(data["waitlist"]["clerkage"])),
            waitlist_until=timedelta(minutes=float(data["waitlist"]["until_minutes"])),
            gst_percent=Decimal(str(data["gst"]["percent"])),
            gst_classes=frozenset(data["gst"]["classes"]),
            other_amounts={
                code: (
                    {k: Decimal(str(v)) for k, v in given.get("flat_charge", {}).items()},
                    Decimal(str(given.get("clerkage", "0"))),
                )
                for code, given in data.get("currency", {}).items()
            },
        )
    except (tomllib.TOMLDecodeError, KeyError, TypeError, ArithmeticError) as error:
        raise ValueError(f"refund rules: {error!r}") from error
    if not windows or [w.hours for w in windows] != sorted(
        (w.hours for w in windows), reverse=True
    ):
        raise ValueError("refund rules: windows must be listed from the longest to the shortest")
    return rules


DEFAULT_RULES = parse_rules(DEFAULT_RULES_TOML)


def load_rules(path: str) -> Rules:
    return parse_rules(Path(path).read_text()) if path else DEFAULT_RULES


@dataclass(frozen=True)
class PassengerQuote:
    position: int
    name: str
    fare: int
    charge: int
    gst: int
    refund: int


@dataclass(frozen=True)
class Quote:
    cancellable: bool
    reason: str | None
    rule: str
    passengers: tuple[PassengerQuote, ...]
    currency: str

    @property
    def charge(self) -> int:
        return sum(p.charge for p in self.passengers)

    @property
    def gst(self) -> int:
        return sum(p.gst for p in self.passengers)

    @property
    def refund(self) -> int:
        return sum(p.refund for p in self.passengers)

    @property
    def positions(self) -> list[int]:
        return [p.position for p in self.passengers]


@dataclass(frozen=True)
class Ticket:
    """What a quote needs to know of a booking (and nothing of the database)."""

    passengers: tuple[str, ...]
    cancelled: frozenset[int]
    amount: int
    currency: str
    travel_class: str
    departs_at: datetime
    paid: bool
    confirmed: bool


def minor(major: Decimal, currency: str) -> int:
    return int((major * 10 ** get_currency_precision(currency)).to_integral_value(ROUND_HALF_UP))


def percent_of(amount: int, percent: Decimal) -> int:
    """`percent` % of `amount` minor units, rounded half up to the minor unit."""
    return int((Decimal(amount) * percent / 100).to_integral_value(ROUND_HALF_UP))


def chosen_positions(ticket: Ticket, positions: list[int] | None) -> list[int]:
    """The positions asked for (none: every passenger still booked); 422 when unknown."""
    active = [i for i in range(1, len(ticket.passengers) + 1) if i not in ticket.cancelled]
    if not positions:
        return active
    for position in positions:
        if position not in range(1, len(ticket.passengers) + 1):
            raise Invalid(
                f"There is no passenger {position} on this booking.",
                errors={"passenger": "Choose passengers from the list."},
            )
        if position in ticket.cancelled:
            raise Invalid(
                f"Passenger {position} ({ticket.passengers[position - 1]}) is already cancelled.",
                errors={"passenger": "That passenger is already cancelled."},
            )
    return sorted(set(positions))


def capped(offer: Quote, left: int, already: str) -> Quote:
    """Money already returned counts: a quote refunds at most what is `left` of the
    payment (`already` says how much went back, in words). The passengers' refunds are
    lowered from the last one backwards, so they still add up to the total."""
    excess = offer.refund - max(left, 0)
    if excess <= 0 or not offer.cancellable:
        return offer
    lines = []
    for line in reversed(offer.passengers):
        cut = min(excess, line.refund)
        excess -= cut
        lines.append(replace(line, refund=line.refund - cut))
    rule = (
        f"{offer.rule}. {already} was already refunded, so the refund is what is left of "
        "the payment"
    )
    return replace(offer, rule=rule, passengers=tuple(reversed(lines)))


def fare_of(ticket: Ticket) -> int:
    return ticket.amount // max(len(ticket.passengers), 1)


def charged_line(ticket: Ticket, position: int, charge: int, rules: Rules) -> PassengerQuote:
    """One passenger's fare, `charge` with GST where the class bears it, and refund."""
    fare = fare_of(ticket)
    name = ticket.passengers[position - 1]
    gst = percent_of(charge, rules.gst_percent) if ticket.travel_class in rules.gst_classes else 0
    if charge + gst > fare:  # a refund is never negative: the fare is all we keep
        gst = percent_of(fare, rules.gst_percent * 100 / (100 + rules.gst_percent)) if gst else 0
        charge = fare - gst
    return PassengerQuote(position, name, fare, charge, gst, fare - charge - gst)


def departure_quote(ticket: Ticket, rules: Rules) -> Quote:
    """A booking still waitlisted when its train departs: every passenger still booked is
    refunded in full less the waitlist clerkage (and its GST where the class bears it)."""
    _, clerkage_major = rules.amounts(ticket.currency)
    clerkage = minor(clerkage_major, ticket.currency)
    rule = (
        f"Still waitlisted when the train departed: refunded less a clerkage charge of "
        f"{clerkage_major:g} {ticket.currency} per passenger"
    )
    lines = tuple(charged_line(ticket, p, clerkage, rules) for p in chosen_positions(ticket, None))
    return Quote(True, None, rule, lines, ticket.currency)


def quote(ticket: Ticket, positions: list[int], rules: Rules, now: datetime) -> Quote:
    """The charge and refund for cancelling `positions` of `ticket` at `now`."""
    fare = fare_of(ticket)
    left = ticket.departs_at - now
    cls, currency = ticket.travel_class, ticket.currency

    def line(position: int, charge: int) -> PassengerQuote:
        return charged_line(ticket, position, charge, rules)

    def refused(reason: str, rule: str) -> Quote:
        lines = tuple(PassengerQuote(p, ticket.passengers[p - 1], fare, 0, 0, 0) for p in positions)
        return Quote(False, reason, rule, lines, currency)

    if not ticket.paid:
        lines = tuple(PassengerQuote(p, ticket.passengers[p - 1], 0, 0, 0, 0) for p in positions)
        return Quote(True, None, "Not paid yet: cancelled free of charge.", lines, currency)
    flat_charges, clerkage_major = rules.amounts(currency)
    if not ticket.confirmed:
        until = rules.waitlist_until
        rule = (
            f"Waitlisted ticket: a clerkage charge of {clerkage_major:g} {currency} per "
            f"passenger, until {until.total_seconds() / 60:g} minutes before departure"
        )
        if left < until:
            return refused(CHART_PREPARED, rule)
        clerkage = minor(clerkage_major, currency)
        return Quote(True, None, rule, tuple(line(p, clerkage) for p in positions), currency)
    window = next((w for w in rules.windows if w.covers(left)), None)
    if window is None:
        rule = f"Less than {rules.chart_hours:g} h before departure: the chart is prepared"
        return refused(CHART_PREPARED, rule)
    flat = minor(flat_charges.get(cls, Decimal(0)), currency)
    charge = max(flat, percent_of(fare, window.percent))
    lines = tuple(line(p, charge) for p in positions)
    return Quote(True, None, window.describe(flat=flat > 0), lines, currency)
