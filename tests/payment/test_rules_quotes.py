"""What a quote says besides its amounts — the rule in words, each passenger's name and fare,
the currency — and the rules file's own checks: the edges mutation testing found open."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from railserve.errors import Invalid
from railserve.payment.rules import (
    CHART_PREPARED,
    DEFAULT_RULES,
    DEFAULT_RULES_TOML,
    PassengerQuote,
    Ticket,
    chosen_positions,
    load_rules,
    minor,
    parse_rules,
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
