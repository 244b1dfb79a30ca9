"""What a quote says besides its amounts — the rule in words, each passenger's name and fare,
the currency — and the rules file's own checks: the edges mutation testing found open."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from railserve.errors import Invalid
from railserve.payment.rules import (
    CHART_PREPARED,
    DEFAULT_RULES,
    DEFAULT_RULES_TOML,
    PassengerQuote,
    Quote,
    Ticket,
    Window,
    capped,
    chosen_positions,
    departure_quote,
    load_rules,
    minor,
    parse_rules,
    percent_of,
    quote,
)

NOW = datetime(2027, 1, 1, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
NAMES = ("Asha", "Bala", "Chitra")


def ticket(left: timedelta, amount: int = 300000, **kw) -> Ticket:
    values = {
        "passengers": NAMES,
        "cancelled": frozenset(),
        "amount": amount,
        "currency": "INR",
        "travel_class": "3A",
        "departs_at": NOW + left,
        "paid": True,
        "confirmed": True,
    }
    return Ticket(**{**values, **kw})


# (time left, paid, confirmed) -> the rule in words
RULES_IN_WORDS = [
    (
        49 * H,
        True,
        True,
        "Confirmed ticket cancelled more than 48 h before departure: flat charge per passenger",
    ),
    (
        24 * H,
        True,
        True,
        "Confirmed ticket cancelled at least 12 h before departure: 25 % of the fare per passenger, at least the flat charge",
    ),
    (
        5 * H,
        True,
        True,
        "Confirmed ticket cancelled at least 4 h before departure: 50 % of the fare per passenger, at least the flat charge",
    ),
    (3 * H, True, True, "Less than 4 h before departure: the chart is prepared"),
    (
        5 * H,
        True,
        False,
        "Waitlisted ticket: a clerkage charge of 60 INR per passenger, until 30 minutes before departure",
    ),
    (
        H / 4,
        True,
        False,
        "Waitlisted ticket: a clerkage charge of 60 INR per passenger, until 30 minutes before departure",
    ),
    (H, False, False, "Not paid yet: cancelled free of charge."),
]


@pytest.mark.parametrize(("left", "paid", "confirmed", "words"), RULES_IN_WORDS)
def test_every_quote_says_its_rule_and_currency(left, paid, confirmed, words):
    offer = quote(ticket(left, paid=paid, confirmed=confirmed), [1, 3], DEFAULT_RULES, NOW)
    assert offer.rule == words
    assert offer.currency == "INR"
    assert [(p.position, p.name) for p in offer.passengers] == [(1, "Asha"), (3, "Chitra")]


def test_a_refused_quote_keeps_nothing_and_says_why():
    offer = quote(ticket(3 * H, amount=300001), [1, 2], DEFAULT_RULES, NOW)
    assert offer.cancellable is False and offer.reason == CHART_PREPARED
    assert offer.passengers == (
        PassengerQuote(1, "Asha", 100000, 0, 0, 0),
        PassengerQuote(2, "Bala", 100000, 0, 0, 0),
    )


def test_an_unpaid_quote_has_no_fare_and_no_charge():
    offer = quote(ticket(H, paid=False, confirmed=False), [2], DEFAULT_RULES, NOW)
    assert offer.cancellable is True
    assert offer.passengers == (PassengerQuote(2, "Bala", 0, 0, 0, 0),)


def test_the_fare_is_the_amount_shared_in_whole_minor_units():
    offer = quote(ticket(49 * H, amount=100001), [1, 2, 3], DEFAULT_RULES, NOW)
    assert [p.fare for p in offer.passengers] == [33333, 33333, 33333]
    assert all(isinstance(p.refund, int) for p in offer.passengers)
    assert offer.passengers[0] == PassengerQuote(1, "Asha", 33333, 18000, 900, 14433)


def test_charge_and_gst_over_the_fare_keep_the_fare_and_no_more():
    # ₹180 + ₹9 GST on a ₹185 fare: the charge and its GST are cut to the fare together
    offer = quote(ticket(72 * H, amount=3 * 18500), [1], DEFAULT_RULES, NOW)
    assert offer.passengers[0] == PassengerQuote(1, "Asha", 18500, 17619, 881, 0)


def test_a_class_the_rules_do_not_name_has_no_flat_charge():
    rules = parse_rules(DEFAULT_RULES_TOML.replace('2S = "60"', ""))
    offer = quote(ticket(72 * H, travel_class="2S"), [1], rules, NOW)
    assert (offer.charge, offer.gst, offer.refund) == (0, 0, 100000)
    offer = quote(ticket(24 * H, travel_class="2S"), [1], rules, NOW)
    assert offer.charge == 25000


def test_the_default_rules_parse_to_themselves_and_a_window_is_inclusive_unless_strict():
    assert parse_rules(DEFAULT_RULES_TOML) == DEFAULT_RULES
    parsed = parse_rules(DEFAULT_RULES_TOML)
    assert [w.strictly for w in parsed.windows] == [True, False, False]
    assert parsed.gst_percent == Decimal(5)
    assert parsed.gst_classes == frozenset({"1A", "EC", "2A", "FC", "3A", "3E", "CC"})
    assert quote(ticket(12 * H), [1], parsed, NOW).passengers[0].charge == 25000


def test_windows_out_of_order_are_refused():
    text = DEFAULT_RULES_TOML.replace("hours = 12", "hours = 60")
    with pytest.raises(ValueError) as refused:
        parse_rules(text)
    assert str(refused.value) == (
        "refund rules: windows must be listed from the longest to the shortest"
    )


def test_the_rules_in_force_come_from_the_file_named(tmp_path):
    assert load_rules("") is DEFAULT_RULES
    path = tmp_path / "rules.toml"
    path.write_text(DEFAULT_RULES_TOML.replace('3A = "180"', '3A = "90"'))
    assert load_rules(str(path)).flat_charge["3A"] == Decimal(90)


def test_configured_amounts_round_half_up_to_the_minor_unit():
    assert minor(Decimal("0.125"), "INR") == 13
    assert minor(Decimal("0.135"), "INR") == 14
    assert minor(Decimal("12.5"), "JPY") == 13


@pytest.mark.parametrize(
    ("positions", "message", "field"),
    [
        ([4], "There is no passenger 4 on this booking.", "Choose passengers from the list."),
        ([0], "There is no passenger 0 on this booking.", "Choose passengers from the list."),
        ([1], "Passenger 1 (Asha) is already cancelled.", "That passenger is already cancelled."),
        ([3], "Passenger 3 (Chitra) is already cancelled.", "That passenger is already cancelled."),
    ],
)
def test_unknown_or_cancelled_positions_are_refused_in_words(positions, message, field):
    booked = ticket(49 * H, cancelled=frozenset({1, 3}))
    with pytest.raises(Invalid) as refused:
        chosen_positions(booked, positions)
    assert refused.value.message == message
    assert refused.value.errors == {"passenger": field}


# Flat charges and clerkage are INR amounts: another currency bears them only when the rules
# file gives it amounts of its own, converted with that currency's own minor unit.
OWN_AMOUNTS = (
    DEFAULT_RULES_TOML
    + """
[currency.JPY]
clerkage = "60"
flat_charge = { 3A = "500" }

[currency.USD]
flat_charge = { 3A = "0.01" }

[currency.EUR]
clerkage = "1.50"
"""
)


@pytest.mark.parametrize(
    ("currency", "left", "confirmed", "charge", "words"),
    [
        # a currency without amounts: percentages only, and the rule says there is no flat charge
        (
            "GBP",
            72 * H,
            True,
            0,
            "Confirmed ticket cancelled more than 48 h before departure: no charge (no flat charge in this currency) per passenger",
        ),
        (
            "GBP",
            24 * H,
            True,
            25000,
            "Confirmed ticket cancelled at least 12 h before departure: 25 % of the fare per passenger",
        ),
        # ¥500 and ¥60 are 500 and 60 minor units: the yen has no subunit
        (
            "JPY",
            72 * H,
            True,
            500,
            "Confirmed ticket cancelled more than 48 h before departure: flat charge per passenger",
        ),
        (
            "JPY",
            5 * H,
            False,
            60,
            "Waitlisted ticket: a clerkage charge of 60 JPY per passenger, until 30 minutes before departure",
        ),
        # a one-cent flat charge is still a flat charge, and a floor
        (
            "USD",
            24 * H,
            True,
            25000,
            "Confirmed ticket cancelled at least 12 h before departure: 25 % of the fare per passenger, at least the flat charge",
        ),
        (
            "USD",
            72 * H,
            True,
            1,
            "Confirmed ticket cancelled more than 48 h before departure: flat charge per passenger",
        ),
        # a currency given a clerkage alone has no flat charge, and one given flat charges
        # alone no clerkage
        ("EUR", 5 * H, False, 150, None),
        ("EUR", 72 * H, True, 0, None),
        ("USD", 5 * H, False, 0, None),
    ],
)
def test_other_currencies_bear_their_own_amounts_in_their_own_minor_units(
    currency, left, confirmed, charge, words
):
    rules = parse_rules(OWN_AMOUNTS)
    booked = ticket(left, currency=currency, confirmed=confirmed)
    offer = quote(booked, [1], rules, NOW)
    assert offer.passengers[0].charge == charge
    assert offer.passengers[0].gst == percent_of(charge, Decimal(5))
    if words is not None:
        assert offer.rule == words


def test_a_window_described_alone_assumes_a_flat_charge():
    assert Window(48, Decimal(0), True).describe() == (
        "Confirmed ticket cancelled more than 48 h before departure: flat charge per passenger"
    )
    assert Window(12, Decimal(25)).describe() == (
        "Confirmed ticket cancelled at least 12 h before departure: 25 % of the fare per "
        "passenger, at least the flat charge"
    )


# Money already returned counts: a quote refunds at most what is left of the payment.
def three_passengers_at(left: timedelta = 49 * H) -> Quote:
    return quote(ticket(left), [1, 2, 3], DEFAULT_RULES, NOW)  # refunds of 81100 each


RULE_49H = "Confirmed ticket cancelled more than 48 h before departure: flat charge per passenger"


@pytest.mark.parametrize(
    ("left", "refunds"),
    [
        # lowered from the last passenger backwards, charges and GST untouched
        (200000, [81100, 81100, 37800]),
        (243299, [81100, 81100, 81099]),  # one paisa short of the quote: one paisa less
        (100000, [81100, 18900, 0]),
        (81099, [81099, 0, 0]),
        (0, [0, 0, 0]),
        (-500, [0, 0, 0]),  # more returned than paid: nothing left, never a negative refund
    ],
)
def test_money_already_returned_lowers_the_refund_to_what_is_left(left, refunds):
    offer = capped(three_passengers_at(), left, "₹500.00")
    assert [p.refund for p in offer.passengers] == refunds
    assert offer.refund == max(left, 0)
    assert [(p.position, p.name, p.fare, p.charge, p.gst) for p in offer.passengers] == [
        (1, "Asha", 100000, 18000, 900),
        (2, "Bala", 100000, 18000, 900),
        (3, "Chitra", 100000, 18000, 900),
    ]
    assert offer.rule == (
        f"{RULE_49H}. ₹500.00 was already refunded, so the refund is what is left of the payment"
    )
    assert (offer.cancellable, offer.reason, offer.currency) == (True, None, "INR")


@pytest.mark.parametrize("left", [243300, 243301, 10**9])
def test_a_quote_within_what_is_left_is_unchanged(left):
    offer = three_passengers_at()
    assert capped(offer, left, "₹500.00") is offer


def test_a_refused_quote_is_not_capped():
    offer = three_passengers_at(3 * H)
    assert capped(offer, -100, "₹500.00") is offer


@pytest.mark.parametrize(
    ("currency", "cls", "cancelled", "rules_text", "line", "words"),
    [
        # every passenger still booked, refunded in full less ₹60 clerkage and 5 % GST
        ("INR", "3A", frozenset(), DEFAULT_RULES_TOML, (6000, 300, 93700), "60 INR"),
        ("INR", "3A", frozenset({2}), DEFAULT_RULES_TOML, (6000, 300, 93700), "60 INR"),
        ("INR", "SL", frozenset(), DEFAULT_RULES_TOML, (6000, 0, 94000), "60 INR"),
        # another currency bears no clerkage unless the rules give it one, in its minor unit
        ("USD", "3A", frozenset(), DEFAULT_RULES_TOML, (0, 0, 100000), "0 USD"),
        ("JPY", "3A", frozenset(), OWN_AMOUNTS, (60, 3, 99937), "60 JPY"),
        ("EUR", "SL", frozenset(), OWN_AMOUNTS, (150, 0, 99850), "1.50 EUR"),
    ],
)
def test_a_booking_waitlisted_at_departure_is_refunded_less_clerkage_and_gst(
    currency, cls, cancelled, rules_text, line, words
):
    booked = ticket(-H, currency=currency, travel_class=cls, cancelled=cancelled)
    booked = replace(booked, confirmed=False)
    offer = departure_quote(booked, parse_rules(rules_text))
    assert (offer.cancellable, offer.reason, offer.currency) == (True, None, currency)
    assert offer.rule == (
        "Still waitlisted when the train departed: refunded less a clerkage charge of "
        f"{words} per passenger"
    )
    still_booked = [p for p in (1, 2, 3) if p not in cancelled]
    assert offer.passengers == tuple(
        PassengerQuote(p, NAMES[p - 1], 100000, *line) for p in still_booked
    )


def test_a_fare_below_the_clerkage_is_kept_whole_at_departure():
    booked = replace(ticket(-H, amount=3 * 5000, travel_class="1A"), confirmed=False)
    offer = departure_quote(booked, DEFAULT_RULES)
    assert offer.passengers[0] == PassengerQuote(1, "Asha", 5000, 4762, 238, 0)
