"""Cancellation charges: the pure quote, by a table that crosses every boundary."""

from datetime import UTC, datetime, timedelta

import pytest

from railserve.errors import Invalid
from railserve.payment.rules import (
    CHART_PREPARED,
    DEFAULT_RULES,
    DEFAULT_RULES_TOML,
    Ticket,
    chosen_positions,
    parse_rules,
    quote,
)

NOW = datetime(2027, 1, 1, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
S = timedelta(seconds=1)


def ticket(
    left: timedelta,
    cls: str = "3A",
    fare: int = 100000,
    passengers: int = 1,
    confirmed: bool = True,
    paid: bool = True,
    currency: str = "INR",
) -> Ticket:
    return Ticket(
        passengers=tuple(f"P{i}" for i in range(1, passengers + 1)),
        cancelled=frozenset(),
        amount=fare * passengers,
        currency=currency,
        travel_class=cls,
        departs_at=NOW + left,
        paid=paid,
        confirmed=confirmed,
    )


# (time left, class, fare, confirmed) -> (charge, gst, refund) per passenger, or None: refused
CASES = [
    # confirmed 3A, ₹1,000: flat ₹180 over 48 h, 25 % from 48 h to 12 h, 50 % down to 4 h
    (49 * H, "3A", 100000, True, (18000, 900, 81100)),
    (48 * H + S, "3A", 100000, True, (18000, 900, 81100)),
    (48 * H, "3A", 100000, True, (25000, 1250, 73750)),
    (12 * H, "3A", 100000, True, (25000, 1250, 73750)),
    (12 * H - S, "3A", 100000, True, (50000, 2500, 47500)),
    (4 * H, "3A", 100000, True, (50000, 2500, 47500)),
    (4 * H - S, "3A", 100000, True, None),
    (-H, "3A", 100000, True, None),
    # the flat charge is a floor under the percentage
    (30 * H, "3A", 40000, True, (18000, 900, 21100)),
    (6 * H, "SL", 20000, True, (12000, 0, 8000)),
    # waitlisted: ₹60 clerkage (+ GST on AC classes) until 30 minutes before departure
    (timedelta(minutes=31), "3A", 100000, False, (6000, 300, 93700)),
    (timedelta(minutes=30), "SL", 100000, False, (6000, 0, 94000)),
    (timedelta(minutes=30) - S, "3A", 100000, False, None),
    (100 * H, "2S", 100000, False, (6000, 0, 94000)),
    # a fare below the charge: the refund is zero, never negative
    (72 * H, "2S", 5000, True, (5000, 0, 0)),
    (72 * H, "3A", 10000, True, (9524, 476, 0)),
    (72 * H, "1A", 100, False, (95, 5, 0)),
    # percentages and GST round half up to the paisa
    (24 * H, "3A", 100002, True, (25001, 1250, 73751)),
    (6 * H, "CC", 100001, True, (50001, 2500, 47500)),
]


@pytest.mark.parametrize(("left", "cls", "fare", "confirmed", "expected"), CASES)
def test_quote_by_time_left_class_and_fare(left, cls, fare, confirmed, expected):
    offer = quote(ticket(left, cls, fare, confirmed=confirmed), [1], DEFAULT_RULES, NOW)
    if expected is None:
        assert not offer.cancellable and offer.reason == CHART_PREPARED
        assert offer.refund == 0
        return
    line = offer.passengers[0]
    assert offer.cancellable and offer.reason is None
    assert (line.charge, line.gst, line.refund) == expected
    assert line.charge + line.gst + line.refund == fare


FLAT = {"1A": 24000, "EC": 24000, "2A": 20000, "FC": 20000, "3A": 18000, "CC": 18000}
FLAT |= {"3E": 18000, "SL": 12000, "2S": 6000}
TAXED = {"1A", "EC", "2A", "FC", "3A", "3E", "CC"}


@pytest.mark.parametrize("cls", sorted(FLAT))
def test_every_class_has_its_flat_charge_and_gst(cls):
    line = quote(ticket(5 * 24 * H, cls), [1], DEFAULT_RULES, NOW).passengers[0]
    gst = FLAT[cls] * 5 // 100 if cls in TAXED else 0
    assert (line.charge, line.gst) == (FLAT[cls], gst)


@pytest.mark.parametrize("count", [1, 6])
def test_totals_add_up_over_passengers(count):
    offer = quote(ticket(49 * H, passengers=6), list(range(1, count + 1)), DEFAULT_RULES, NOW)
    assert len(offer.passengers) == count
    assert (offer.charge, offer.gst, offer.refund) == (18000 * count, 900 * count, 81100 * count)
    assert offer.positions == list(range(1, count + 1))


def test_unpaid_bookings_cancel_free():
    offer = quote(ticket(H, paid=False, confirmed=False), [1], DEFAULT_RULES, NOW)
    assert offer.cancellable and offer.refund == offer.charge == 0


def test_other_currencies_keep_their_minor_units():
    line = quote(ticket(24 * H, "SL", 5001, currency="JPY"), [1], DEFAULT_RULES, NOW).passengers[0]
    assert (line.charge, line.refund) == (1250, 3751)  # 25 % of ¥5,001, half up to the yen


def test_positions_default_to_everyone_still_booked_and_refuse_unknown_ones():
    t = ticket(49 * H, passengers=3)
    t = Ticket(**{**t.__dict__, "cancelled": frozenset({2})})
    assert chosen_positions(t, None) == [1, 3]
    assert chosen_positions(t, [3, 3, 1]) == [1, 3]
    for bad in ([2], [4], [0]):
        with pytest.raises(Invalid):
            chosen_positions(t, bad)


def test_rules_replaced_from_toml_move_the_windows():
    text = """
    [flat_charge]
    3A = "100"
    [[window]]
    hours = 72
    strictly = true
    percent = 0
    [[window]]
    hours = 8
    percent = 50
    [waitlist]
    clerkage = "20"
    until_minutes = 60
    [gst]
    percent = 0
    classes = []
    """
    rules = parse_rules(text)
    assert quote(ticket(73 * H), [1], rules, NOW).passengers[0].charge == 10000
    assert quote(ticket(72 * H), [1], rules, NOW).passengers[0].charge == 50000
    assert not quote(ticket(8 * H - S), [1], rules, NOW).cancellable
    assert quote(ticket(2 * H, confirmed=False), [1], rules, NOW).passengers[0].refund == 98000


def test_malformed_rules_are_refused():
    with pytest.raises(ValueError, match="refund rules"):
        parse_rules("[flat_charge]\n3A = 1")


USD_AMOUNTS = (
    DEFAULT_RULES_TOML
    + """
[currency.USD]
clerkage = "1"
flat_charge = { 3A = "2.50" }
"""
)


@pytest.mark.parametrize(
    ("currency", "rules_text", "left", "confirmed", "charge", "gst"),
    [
        # INR: the flat charge, its floor and the clerkage, as the rules give them.
        ("INR", DEFAULT_RULES_TOML, timedelta(hours=72), True, 18000, 900),
        ("INR", DEFAULT_RULES_TOML, timedelta(hours=24), True, 31250, 1563),
        ("INR", DEFAULT_RULES_TOML, timedelta(hours=24), False, 6000, 300),
        # USD without amounts of its own: percentages only, no flat, no floor, no clerkage.
        ("USD", DEFAULT_RULES_TOML, timedelta(hours=72), True, 0, 0),
        ("USD", DEFAULT_RULES_TOML, timedelta(hours=24), True, 31250, 1563),
        ("USD", DEFAULT_RULES_TOML, timedelta(hours=24), False, 0, 0),
        # USD given its own amounts by the rules file.
        ("USD", USD_AMOUNTS, timedelta(hours=72), True, 250, 13),
        ("USD", USD_AMOUNTS, timedelta(hours=24), False, 100, 5),
    ],
)
def test_flat_charges_and_clerkage_are_inr_unless_the_rules_give_the_currency_amounts(
    currency, rules_text, left, confirmed, charge, gst
):
    booked = ticket(left, fare=125000, confirmed=confirmed, currency=currency)
    offer = quote(booked, [1], parse_rules(rules_text), NOW)
    assert (offer.charge, offer.gst) == (charge, gst)
    if currency != "INR" and not charge:
        assert "240" not in offer.rule and "180" not in offer.rule
