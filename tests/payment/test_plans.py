"""Payment plans: the pure split, the choice of plans and the TOML check, by tables of cases."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from railserve import display
from railserve.cli import main
from railserve.config import ConfigError, from_env
from railserve.payment.plans import (
    DEFAULT_PLANS,
    FULL,
    FULL_PLAN,
    Part,
    PartRule,
    Plan,
    PlanError,
    charges_floor,
    describe,
    due_times,
    load_plans,
    offered,
    parse_plans,
    split,
)
from railserve.payment.rules import DEFAULT_RULES, Ticket

NOW = datetime(2027, 1, 1, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)
S = timedelta(seconds=1)
DAYS_30 = 30 * 24 * H
CLASSES = ["1A", "EC", "2A", "FC", "3A", "3E", "CC", "SL", "2S"]


@pytest.fixture(autouse=True)
def indian_english():
    display.configure("en_IN", "Asia/Kolkata")
    yield
    display.configure("en_IN", "Asia/Kolkata")


def ticket(
    amount: int,
    cls: str = "3A",
    passengers: int = 1,
    currency: str = "INR",
    left: timedelta = DAYS_30,
) -> Ticket:
    return Ticket(
        passengers=tuple(f"P{i}" for i in range(1, passengers + 1)),
        cancelled=frozenset({1}),  # the split ignores cancellations and payment so far
        amount=amount,
        currency=currency,
        travel_class=cls,
        departs_at=NOW + left,
        paid=False,
        confirmed=False,
    )


def plan(*percents: float, dues: tuple[float, ...] = (72,), cover: bool = True, **kw) -> Plan:
    """A plan of `percents`, the later parts due `dues` hours before departure."""
    rules = [PartRule(Decimal(str(percents[0])), None, cover)]
    rules += [PartRule(Decimal(str(p)), h) for p, h in zip(percents[1:], dues, strict=True)]
    return Plan("custom", "Custom", tuple(rules), **kw)


def amounts(parts: tuple[Part, ...]) -> tuple[int, ...]:
    return tuple(part.amount for part in parts)


DEPOSIT, THIRDS = DEFAULT_PLANS["deposit"], DEFAULT_PLANS["thirds"]

# (plan, class, passengers, amount, currency) -> amounts of the parts. The deposit's balance
# falls due 72 h before departure (more than 48 h: the flat charge); per passenger,
# charge + GST is 1A/EC ₹252, 2A/FC ₹210, 3A/3E/CC ₹189, SL ₹120, 2S ₹60 (no GST).
SPLITS = [
    # the contract's example: 2 × 3A, ₹2,501.00; floor 2 × ₹189 = ₹378, below the 25 %
    (DEPOSIT, "3A", 2, 250100, "INR", (62525, 187575)),
    # each class at its floor (the 25 % is exactly the charges) and four paise below it:
    # the first part is raised to the floor, the balance lowered by as much
    (DEPOSIT, "1A", 1, 100800, "INR", (25200, 75600)),
    (DEPOSIT, "1A", 1, 100796, "INR", (25200, 75596)),
    (DEPOSIT, "EC", 1, 100796, "INR", (25200, 75596)),
    (DEPOSIT, "2A", 1, 84000, "INR", (21000, 63000)),
    (DEPOSIT, "2A", 1, 83996, "INR", (21000, 62996)),
    (DEPOSIT, "FC", 1, 83996, "INR", (21000, 62996)),
    (DEPOSIT, "3A", 1, 75600, "INR", (18900, 56700)),
    (DEPOSIT, "3A", 1, 75596, "INR", (18900, 56696)),
    (DEPOSIT, "3A", 1, 75604, "INR", (18901, 56703)),
    (DEPOSIT, "3E", 1, 75596, "INR", (18900, 56696)),
    (DEPOSIT, "CC", 1, 75596, "INR", (18900, 56696)),
    (DEPOSIT, "SL", 1, 48000, "INR", (12000, 36000)),
    (DEPOSIT, "SL", 1, 47996, "INR", (12000, 35996)),
    (DEPOSIT, "2S", 1, 24000, "INR", (6000, 18000)),
    (DEPOSIT, "2S", 1, 23996, "INR", (6000, 17996)),
    # six passengers: six times the floor
    (DEPOSIT, "1A", 6, 604800, "INR", (151200, 453600)),
    (DEPOSIT, "1A", 6, 604796, "INR", (151200, 453596)),
    (DEPOSIT, "SL", 6, 287996, "INR", (72000, 215996)),
    (DEPOSIT, "2S", 6, 144004, "INR", (36001, 108003)),
    (DEPOSIT, "2S", 6, 143996, "INR", (36000, 107996)),
    # a fare below the charge: everything now, nothing left to fall due (never negative)
    (DEPOSIT, "2S", 1, 5000, "INR", (5000, 0)),
    (DEPOSIT, "3A", 1, 10000, "INR", (10000, 0)),
    (DEPOSIT, "2S", 6, 30000, "INR", (30000, 0)),
    # three parts: the rest (rounding) on the first; the floor taken from the last part
    # backwards, then from the one before it
    (THIRDS, "3A", 2, 250100, "INR", (85034, 82533, 82533)),
    (THIRDS, "3A", 1, 100001, "INR", (34001, 33000, 33000)),
    (THIRDS, "3A", 1, 54000, "INR", (18900, 17820, 17280)),
    (THIRDS, "1A", 6, 200000, "INR", (151200, 48800, 0)),
    (THIRDS, "SL", 6, 72000, "INR", (72000, 0, 0)),
    # JPY has no minor unit, BHD three: the charges are the 25 % of the fare at 24 h
    (plan(25, 75, dues=(24,), currencies=None), "3A", 1, 100001, "JPY", (26250, 73751)),
    (plan(30, 70, dues=(24,)), "3A", 1, 100000, "JPY", (30000, 70000)),
    (plan(25, 75, dues=(24,)), "3A", 2, 2000001, "BHD", (525000, 1475001)),
    (plan(30, 70, dues=(24,)), "3A", 2, 2000001, "BHD", (600001, 1400000)),
    # fractional hours: 36.5 h is in the 25 % window; 48 h exactly too, 48.5 h is flat
    (plan(20, 80, dues=(36.5,)), "3A", 1, 100000, "INR", (26250, 73750)),
    (plan(20, 80, dues=(48,)), "3A", 1, 100000, "INR", (26250, 73750)),
    (plan(20, 80, dues=(48.5,)), "3A", 1, 100000, "INR", (20000, 80000)),
    (plan(10, 90, dues=(48.5,)), "3A", 1, 100000, "INR", (18900, 81100)),
    (plan(10, 90, dues=(6,)), "SL", 1, 100000, "INR", (50000, 50000)),
    # due after the chart is prepared: no cancellation then, so everything is kept now
    (plan(10, 90, dues=(2,)), "3A", 1, 100000, "INR", (100000, 0)),
    # without cover_charges the percentages alone
    (plan(10, 90, cover=False), "1A", 6, 604800, "INR", (60480, 544320)),
    (plan(10, 45, 45, dues=(100, 50), cover=False), "3A", 1, 99999, "INR", (10001, 44999, 44999)),
    (plan(33.5, 66.5, cover=False), "3A", 1, 1001, "INR", (336, 665)),
    # one part: everything now, whatever the plan says of the charges
    (FULL_PLAN, "1A", 6, 604800, "INR", (604800,)),
    (plan(100, dues=()), "1A", 6, 1000, "INR", (1000,)),
]


@pytest.mark.parametrize(("chosen", "cls", "count", "amount", "currency", "expected"), SPLITS)
def test_split_by_plan_class_passengers_and_amount(chosen, cls, count, amount, currency, expected):
    parts = split(chosen, ticket(amount, cls, count, currency), DEFAULT_RULES)
    assert amounts(parts) == expected
    assert sum(expected) == amount
    assert [part.seq for part in parts] == list(range(1, len(expected) + 1))


def test_the_contract_example_falls_due_72_hours_before_departure():
    t = ticket(250100, "3A", 2)
    parts = split(DEPOSIT, t, DEFAULT_RULES)
    assert parts == (Part(1, 62525, None), Part(2, 187575, t.departs_at - 72 * H))
    assert describe(parts, "INR") == "₹625.25 now · ₹1,875.75 by 28 Jan, 14:30 IST"


def test_three_parts_fall_due_in_order_and_fractional_hours_keep_their_minutes():
    t = ticket(900000)
    assert due_times(THIRDS, t.departs_at) == (None, t.departs_at - 336 * H, t.departs_at - 72 * H)
    half = plan(20, 30, 50, dues=(36.5, 0.25))
    assert due_times(half, t.departs_at) == (
        None,
        t.departs_at - timedelta(hours=36, minutes=30),
        t.departs_at - timedelta(minutes=15),
    )


def test_charges_floor_is_every_passenger_confirmed_at_that_time():
    t = ticket(600000, "2A", 6)  # cancellations and payment so far play no part
    assert charges_floor(t, DEFAULT_RULES, t.departs_at - 49 * H) == 6 * 21000
    assert charges_floor(t, DEFAULT_RULES, t.departs_at - 24 * H) == 6 * 26250
    assert charges_floor(t, DEFAULT_RULES, t.departs_at - 3 * H) == 600000


@pytest.mark.parametrize(
    ("parts", "currency", "label"),
    [
        ((Part(1, 250100, None),), "INR", "₹2,501.00 now"),
        (
            (Part(1, 61250, None), Part(2, 183750, datetime(2027, 1, 12, 9, 0, tzinfo=UTC))),
            "INR",
            "₹612.50 now · ₹1,837.50 by 12 Jan, 14:30 IST",
        ),
        (
            (
                Part(1, 34, None),
                Part(2, 33, datetime(2027, 3, 1, 18, 45, tzinfo=UTC)),
                Part(3, 1233, datetime(2027, 3, 10, 0, 0, tzinfo=UTC)),
            ),
            "JPY",
            "JP¥34 now · JP¥33 by 2 Mar, 00:15 IST · JP¥1,233 by 10 Mar, 05:30 IST",
        ),
    ],
)
def test_describe_labels_each_part_in_the_configured_locale_and_zone(parts, currency, label):
    assert describe(parts, currency) == label


def names(plans: tuple[Plan, ...]) -> list[str]:
    return [p.name for p in plans]


# (amount, currency, time left) -> plans offered with the built-in ones
OFFERS = [
    (250100, "INR", DAYS_30, [FULL, "deposit"]),
    (300000, "INR", 504 * H, [FULL, "deposit", "thirds"]),
    (300000, "INR", 504 * H - S, [FULL, "deposit"]),
    (299999, "INR", 504 * H, [FULL, "deposit"]),
    (100000, "INR", 168 * H, [FULL, "deposit"]),
    (100000, "INR", 168 * H - S, [FULL]),
    (99999, "INR", 168 * H, [FULL]),
    (900000, "USD", DAYS_30, [FULL]),
    (900000, "INR", -H, [FULL]),
]


@pytest.mark.parametrize(("amount", "currency", "left", "expected"), OFFERS)
def test_offered_plans_by_time_left_amount_and_currency(amount, currency, left, expected):
    assert names(offered(DEFAULT_PLANS, ticket(amount, currency=currency, left=left), NOW)) == (
        expected
    )


def test_every_later_part_must_fall_due_in_the_future():
    soon = {
        "soon": Plan("soon", "Soon", plan(50, 50, dues=(72,)).parts, currencies=frozenset({"INR"}))
    }
    assert names(offered(soon, ticket(1000, left=72 * H + S), NOW)) == [FULL, "soon"]
    assert names(offered(soon, ticket(1000, left=72 * H), NOW)) == [FULL]


def test_a_plan_refused_does_not_hide_the_plans_after_it():
    parts = plan(50, 50, dues=(24,)).parts
    inr = frozenset({"INR"})
    plans = {
        FULL: FULL_PLAN,
        "dollars": Plan("dollars", "D", parts, currencies=frozenset({"USD"})),
        "far": Plan("far", "F", parts, min_hours_before_departure=1000, currencies=inr),
        "rich": Plan("rich", "R", parts, min_amount="99999.00", currencies=inr),
        "early": Plan("early", "E", plan(50, 50, dues=(800,)).parts, currencies=inr),
        "easy": Plan("easy", "Easy", parts, currencies=inr),
    }
    assert names(offered(plans, ticket(100000), NOW)) == [FULL, "easy"]


def test_min_amount_is_read_in_the_trains_currency():
    yen = parse_plans(PLAN.format(extra='min_amount = "1000"\ncurrencies = ["JPY", "BHD"]'))
    assert names(offered(yen, ticket(1000, currency="JPY"), NOW)) == [FULL, "p"]
    assert names(offered(yen, ticket(999, currency="JPY"), NOW)) == [FULL]
    assert names(offered(yen, ticket(1000000, currency="BHD"), NOW)) == [FULL, "p"]
    assert names(offered(yen, ticket(999999, currency="BHD"), NOW)) == [FULL]
    assert names(offered(yen, ticket(10**9, currency="INR"), NOW)) == [FULL]


def test_the_built_in_plans_are_the_contracts():
    assert list(DEFAULT_PLANS) == [FULL, "deposit", "thirds"]
    assert DEFAULT_PLANS[FULL] == FULL_PLAN
    assert FULL_PLAN.parts == (PartRule(Decimal(100)),)
    assert DEFAULT_PLANS["deposit"] == Plan(
        "deposit",
        "Deposit now, balance later",
        (PartRule(Decimal(25), None, True), PartRule(Decimal(75), 72.0)),
        168.0,
        "1000.00",
        frozenset({"INR"}),
        (72.0, 24.0),
    )
    assert DEFAULT_PLANS["thirds"] == Plan(
        "thirds",
        "Three parts",
        (
            PartRule(Decimal(34), None, True),
            PartRule(Decimal(33), 336.0),
            PartRule(Decimal(33), 72.0),
        ),
        504.0,
        "3000.00",
        frozenset({"INR"}),
        (72.0, 24.0),
    )
    assert DEPOSIT.min_minor("INR") == 100000


PLAN = """
[plans.p]
title = "P"
{extra}

[[plans.p.parts]]
percent = 40
cover_charges = true

[[plans.p.parts]]
percent = 60
due_hours_before_departure = 1.5
"""


def parts_toml(*parts: str) -> str:
    return "".join(f"\n[[plans.x.parts]]\n{part}\n" for part in parts)


GOOD = 'title = "X"\ncurrencies = ["INR"]\n'
TWO = parts_toml("percent = 25", "percent = 75\ndue_hours_before_departure = 72")


def test_a_file_replaces_the_built_in_plans_and_keeps_full():
    plans = parse_plans(PLAN.format(extra='currencies = ["INR"]'))
    assert list(plans) == [FULL, "p"]
    p = plans["p"]
    assert p.title == "P"
    assert p.parts == (PartRule(Decimal(40), None, True), PartRule(Decimal(60), 1.5))
    assert (p.min_hours_before_departure, p.min_amount, p.remind_hours_before_due) == (0, "0", ())
    assert p.min_minor("INR") == 0
    assert parse_plans("") == {FULL: FULL_PLAN}


@pytest.mark.parametrize(
    ("parts", "percents", "dues"),
    [
        (parts_toml("percent = 100"), [100], [None]),
        (
            parts_toml("percent = 1", "percent = 99\ndue_hours_before_departure = 0"),
            [1, 99],
            [None, 0],
        ),
        (
            parts_toml(
                "percent = 0.5",
                "percent = 49.5\ndue_hours_before_departure = 0.5",
                "percent = 50\ndue_hours_before_departure = 0",
            ),
            [Decimal("0.5"), Decimal("49.5"), 50],
            [None, 0.5, 0],
        ),
    ],
)
def test_edge_percentages_and_a_part_due_at_departure_are_allowed(parts, percents, dues):
    text = '[plans.x]\ntitle = " X "\nremind_hours_before_due = [48, 0.5]\n' + GOOD + parts
    x = parse_plans(text.replace('title = "X"\n', ""))["x"]
    assert [p.percent for p in x.parts] == percents
    assert [p.due_hours_before_departure for p in x.parts] == dues
    assert (x.title, x.remind_hours_before_due) == ("X", (48.0, 0.5))


# TOML text -> the problem the message names (each also names the plan)
BAD_FILES = [
    (
        "[plans.x]\n"
        + GOOD
        + parts_toml("percent = 25", "percent = 70\ndue_hours_before_departure = 72"),
        "add up to 95, not 100",
    ),
    (
        "[plans.x]\n"
        + GOOD
        + parts_toml("percent = 50.5", "percent = 50\ndue_hours_before_departure = 72"),
        "add up to 100.5, not 100",
    ),
    (
        "[plans.x]\n"
        + GOOD
        + parts_toml(
            "percent = 34",
            "percent = 33\ndue_hours_before_departure = 72",
            "percent = 33\ndue_hours_before_departure = 336",
        ),
        "part 3: falls due 336 h before departure, not after part 2 (72 h)",
    ),
    (
        "[plans.x]\n"
        + GOOD
        + parts_toml(
            "percent = 34",
            "percent = 33\ndue_hours_before_departure = 72",
            "percent = 33\ndue_hours_before_departure = 72",
        ),
        "part 3: falls due 72 h",
    ),
    (
        "[plans.x]\n"
        + GOOD
        + parts_toml(
            "percent = 25\ndue_hours_before_departure = 100",
            "percent = 75\ndue_hours_before_departure = 72",
        ),
        "part 1: the first part is paid now and has no due time",
    ),
    (
        "[plans.x]\n" + GOOD + parts_toml("percent = 25", "percent = 75"),
        "part 2: due_hours_before_departure is missing",
    ),
    (
        "[plans.x]\n"
        + GOOD
        + parts_toml("percent = 25", "percent = 75\ndue_hours_before_departure = -1"),
        "due_hours_before_departure must not be negative",
    ),
    (
        "[plans.x]\n"
        + GOOD
        + parts_toml("percent = 25", "percent = 75\ndue_hours_before_departure = nan"),
        "due_hours_before_departure must be a number",
    ),
    (
        "[plans.x]\n"
        + GOOD
        + parts_toml("percent = 25", 'percent = 75\ndue_hours_before_departure = "72"'),
        "due_hours_before_departure must be a number",
    ),
    (
        "[plans.x]\n"
        + GOOD
        + parts_toml('percent = "25"', "percent = 75\ndue_hours_before_departure = 72"),
        "part 1: percent must be a number",
    ),
    (
        "[plans.x]\n"
        + GOOD
        + parts_toml("percent = true", "percent = 75\ndue_hours_before_departure = 72"),
        "percent must be a number",
    ),
    (
        "[plans.x]\n"
        + GOOD
        + parts_toml("percent = 0", "percent = 100\ndue_hours_before_departure = 72"),
        "percent must be more than 0 and at most 100",
    ),
    (
        "[plans.x]\n"
        + GOOD
        + parts_toml("percent = 150", "percent = -50\ndue_hours_before_departure = 72"),
        "percent must be more than 0 and at most 100",
    ),
    (
        "[plans.x]\n"
        + GOOD
        + parts_toml("percent = 100.5", "percent = 0.5\ndue_hours_before_departure = 72"),
        "part 1: percent must be more than 0 and at most 100",
    ),
    (
        "[plans.x]\n" + GOOD + parts_toml("due_hours_before_departure = 1"),
        "part 1: percent is missing",
    ),
    ("[plans.x]\n" + GOOD + parts_toml("percnt = 100"), "part 1: unknown key 'percnt'"),
    (
        "[plans.x]\n"
        + GOOD
        + parts_toml(
            "percent = 25", "percent = 75\ndue_hours_before_departure = 72\ncover_charges = true"
        ),
        "part 2: only the first part can cover the charges",
    ),
    (
        "[plans.x]\n"
        + GOOD
        + parts_toml(
            'percent = 25\ncover_charges = "yes"', "percent = 75\ndue_hours_before_departure = 72"
        ),
        "cover_charges must be true or false",
    ),
    ("[plans.x]\n" + GOOD + "parts = [1, 2]", "part 1: must be a table with percent"),
    ("[plans.x]\n" + GOOD + "parts = []", "parts must list at least one part"),
    ("[plans.x]\n" + GOOD, "parts must list at least one part"),
    ('[plans.x]\ncurrencies = ["INR"]\n' + TWO, "title must be a non-empty string"),
    ('[plans.x]\ntitle = " "\ncurrencies = ["INR"]\n' + TWO, "title must be a non-empty string"),
    ('[plans.x]\ntitle = "X"\n' + TWO, "currencies must list at least one currency code"),
    (
        '[plans.x]\ntitle = "X"\ncurrencies = []\n' + TWO,
        "currencies must list at least one currency code",
    ),
    (
        '[plans.x]\ntitle = "X"\ncurrencies = "INR"\n' + TWO,
        "currencies must list at least one currency code",
    ),
    (
        '[plans.x]\ntitle = "X"\ncurrencies = ["XYZ"]\n' + TWO,
        "'XYZ' is not an ISO 4217 currency code",
    ),
    (
        '[plans.x]\ntitle = "X"\ncurrencies = ["inr"]\n' + TWO,
        "'inr' is not an ISO 4217 currency code",
    ),
    (
        '[plans.x]\nmin_amount = "1000.005"\n' + GOOD + TWO,
        "min_amount '1000.005' is not an amount in INR (a string with the currency's digits, "
        'e.g. "1000.00" for INR)',
    ),
    (
        '[plans.x]\nmin_amount = "1000.00"\ntitle = "X"\ncurrencies = ["INR", "JPY"]\n' + TWO,
        "min_amount '1000.00' is not an amount in JPY",
    ),
    ("[plans.x]\nmin_amount = 1000\n" + GOOD + TWO, "min_amount 1000 is not an amount in INR"),
    ('[plans.x]\nmin_amount = "-5"\n' + GOOD + TWO, "min_amount '-5' is not an amount"),
    (
        "[plans.x]\nmin_hours_before_departure = -1\n" + GOOD + TWO,
        "min_hours_before_departure must not be negative",
    ),
    (
        '[plans.x]\nmin_hours_before_departure = "168"\n' + GOOD + TWO,
        "min_hours_before_departure must be a number",
    ),
    (
        "[plans.x]\nremind_hours_before_due = 24\n" + GOOD + TWO,
        "remind_hours_before_due must be a list of hours",
    ),
    (
        "[plans.x]\nremind_hours_before_due = [24, -1]\n" + GOOD + TWO,
        "remind_hours_before_due must not be negative",
    ),
    (
        "[plans.x]\nremind_hours_before_due = [24, 24.0]\n" + GOOD + TWO,
        "remind_hours_before_due lists an hour twice",
    ),
    ("[plans.x]\ntitel = 1\n" + GOOD + TWO, "unknown key 'titel'"),
    (
        "[plans.full]\n" + GOOD + TWO.replace(".x.", ".full."),
        "'full' is built in and cannot be replaced",
    ),
    ('[plans."Deposit!"]\n' + GOOD, "a name is 1 to 32 lowercase letters, digits, - or _"),
    ("[plans]\nx = 3\n", "must be a table"),
]


@pytest.mark.parametrize(("text", "problem"), BAD_FILES)
def test_a_bad_file_is_refused_naming_the_plan_and_the_problem(text, problem):
    with pytest.raises(PlanError) as refused:
        parse_plans(text)
    message = str(refused.value)
    assert problem in message
    assert message.startswith("payment plan 'x'") or "'full'" in message or "Deposit!" in message


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[plans.x\n", "payment plans: not TOML"),
        ("plans = 3\n", "payment plans: plans must be tables, [plans.<name>]"),
        ("[plan.x]\ntitle = 'X'\n", "payment plans: unknown key 'plan'"),
    ],
)
def test_a_file_that_is_not_plans_is_refused(text, problem):
    with pytest.raises(PlanError) as refused:
        parse_plans(text)
    assert str(refused.value).startswith(problem)


def test_the_plans_in_force_come_from_the_file_named(tmp_path):
    assert load_plans("") is DEFAULT_PLANS
    path = tmp_path / "plans.toml"
    path.write_text(PLAN.format(extra='currencies = ["INR"]'))
    assert list(load_plans(str(path))) == [FULL, "p"]
    with pytest.raises(PlanError, match="payment plans: cannot read"):
        load_plans(str(tmp_path / "missing.toml"))


@pytest.fixture
def bad_plans(tmp_path, monkeypatch):
    path = tmp_path / "plans.toml"
    path.write_text(
        "[plans.x]\n"
        + GOOD
        + parts_toml("percent = 25", "percent = 70\ndue_hours_before_departure = 72")
    )
    monkeypatch.setenv("RAILSERVE_PAYMENT_PLANS", str(path))
    monkeypatch.setenv("RAILSERVE_DATABASE_URL", f"sqlite://{tmp_path / 'db.sqlite3'}")
    monkeypatch.setenv("RAILSERVE_ENV", "development")
    for secret in ("SECRET_KEY", "WEBHOOK_SECRET", "SIMUPI_WEBHOOK_SECRET"):
        monkeypatch.setenv(f"RAILSERVE_{secret}", "test")  # no instance folder written
    return path


def test_settings_refuse_a_bad_plans_file(bad_plans):
    with pytest.raises(ConfigError, match="payment plan 'x': the parts' percentages add up to 95"):
        from_env()
    bad_plans.write_text(PLAN.format(extra='currencies = ["INR"]'))
    assert from_env().payment_plans == str(bad_plans)


@pytest.mark.parametrize("command", [["check"], ["sweep"], ["init-db"], ["serve"]])
def test_every_command_refuses_a_bad_plans_file(bad_plans, command, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(command)
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert "RAILSERVE_PAYMENT_PLANS" in error
    assert "payment plan 'x': the parts' percentages add up to 95, not 100" in error
    assert not (bad_plans.parent / "db.sqlite3").exists()


@st.composite
def plans_and_tickets(draw):
    count = draw(st.integers(1, 4))
    cuts = sorted(
        draw(st.lists(st.integers(1, 99), min_size=count - 1, max_size=count - 1, unique=True))
    )
    percents = [b - a for a, b in zip([0, *cuts], [*cuts, 100], strict=True)]
    hours = sorted(
        draw(
            st.lists(
                st.floats(0, 2000, allow_nan=False),
                min_size=count - 1,
                max_size=count - 1,
                unique=True,
            )
        ),
        reverse=True,
    )
    chosen = plan(*percents, dues=tuple(hours), cover=draw(st.booleans()))
    currency = draw(st.sampled_from(["INR", "JPY", "BHD"]))
    t = ticket(
        draw(st.integers(0, 10**12)),
        draw(st.sampled_from(CLASSES)),
        draw(st.integers(1, 6)),
        currency,
        timedelta(hours=draw(st.floats(-10, 5000, allow_nan=False))),
    )
    return chosen, t


@given(plans_and_tickets())
def test_parts_add_up_to_the_amount_and_none_is_negative(case):
    chosen, t = case
    parts = split(chosen, t, DEFAULT_RULES)
    assert sum(amounts(parts)) == t.amount
    assert all(part.amount >= 0 for part in parts)
    assert len(parts) == len(chosen.parts)
    if chosen.parts[0].cover_charges and len(parts) > 1:
        floor = charges_floor(t, DEFAULT_RULES, parts[1].due_at)
        assert parts[0].amount >= min(floor, t.amount)
    dues = [part.due_at for part in parts[1:]]
    assert dues == sorted(dues)
