"""Payment plans as data, and the one pure function that splits an amount into parts.

A railway changes its plans (the deposit, how many parts, how long before departure each
falls due) more often than its code, so they follow `rules.py`: TOML data, checked when it
is read, and pure functions over it. `RAILSERVE_PAYMENT_PLANS` may name a TOML file whose
plans replace the built-in ones (`DEFAULT_PLANS_TOML` shows the shape); `full` always stays.
The split never touches the database: the booking's side hands it a `Ticket`.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from functools import lru_cache
from itertools import pairwise
from pathlib import Path
from types import MappingProxyType
from typing import Any

from railserve.display import format_due, format_money
from railserve.money import known_currency, parse_amount
from railserve.payment.rules import Rules, Ticket, quote

FULL = "full"
PLAN_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")

DEFAULT_PLANS_TOML = """
[plans.deposit]
title = "Deposit now, balance later"
min_hours_before_departure = 168   # offered only when departure is at least this far away
min_amount = "1000.00"             # in the train's currency; "0" offers it at any amount
currencies = ["INR"]               # trains priced in these currencies only
remind_hours_before_due = [72, 24]

[[plans.deposit.parts]]            # the first part is paid now and has no due time
percent = 25
cover_charges = true               # at least the cancellation charges

[[plans.deposit.parts]]
percent = 75
due_hours_before_departure = 72

[plans.thirds]
title = "Three parts"
min_hours_before_departure = 504
min_amount = "3000.00"
currencies = ["INR"]
remind_hours_before_due = [72, 24]

[[plans.thirds.parts]]
percent = 34
cover_charges = true

[[plans.thirds.parts]]
percent = 33
due_hours_before_departure = 336

[[plans.thirds.parts]]
percent = 33
due_hours_before_departure = 72
"""

PLAN_KEYS = {
    "title",
    "min_hours_before_departure",
    "min_amount",
    "currencies",
    "remind_hours_before_due",
    "parts",
}
PART_KEYS = {"percent", "cover_charges", "due_hours_before_departure"}


@dataclass(frozen=True)
class PartRule:
    """One part of a plan: a percentage, and (after the first) hours before departure."""

    percent: Decimal
    due_hours_before_departure: float | None = None
    cover_charges: bool = False


@dataclass(frozen=True)
class Plan:
    name: str
    title: str
    parts: tuple[PartRule, ...]
    min_hours_before_departure: float = 0.0
    min_amount: str = "0"
    currencies: frozenset[str] | None = None  # None: any currency (`full`)
    remind_hours_before_due: tuple[float, ...] = ()

    def min_minor(self, currency: str) -> int:
        """`min_amount` in minor units of `currency` (checked when the plan was read)."""
        return parse_amount(self.min_amount, currency) or 0


FULL_PLAN = Plan(FULL, "Pay in full now", (PartRule(Decimal(100)),))


@dataclass(frozen=True)
class Part:
    seq: int  # 1-based
    amount: int  # minor units
    due_at: datetime | None  # UTC; None for the first part, paid now


class PlanError(ValueError):
    """A plans file that cannot be used; the message names the plan and the problem."""


def _number(value: Any, where: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PlanError(f"{where}: {what} must be a number, not {value!r}")
    if value < 0:
        raise PlanError(f"{where}: {what} must not be negative, not {value!r}")
    return float(value)


def _part(raw: Any, where: str, first: bool) -> PartRule:
    if not isinstance(raw, dict):
        raise PlanError(f"{where}: must be a table with percent")
    unknown = sorted(set(raw) - PART_KEYS)
    if unknown:
        raise PlanError(f"{where}: unknown key {unknown[0]!r}")
    if "percent" not in raw:
        raise PlanError(f"{where}: percent is missing")
    _number(raw["percent"], where, "percent")
    percent = Decimal(str(raw["percent"]))
    if not 0 < percent <= 100:
        raise PlanError(f"{where}: percent must be more than 0 and at most 100")
    cover = raw.get("cover_charges", False)
    if not isinstance(cover, bool):
        raise PlanError(f"{where}: cover_charges must be true or false")
    due = raw.get("due_hours_before_departure")
    if first:
        if due is not None:
            raise PlanError(f"{where}: the first part is paid now and has no due time")
        return PartRule(percent, None, cover)
    if cover:
        raise PlanError(f"{where}: only the first part can cover the charges")
    if due is None:
        raise PlanError(f"{where}: due_hours_before_departure is missing")
    return PartRule(percent, _number(due, where, "due_hours_before_departure"))


def parse_plan(name: str, raw: Any) -> Plan:
    """One plan from its TOML table; PlanError naming the plan and the problem."""
    where = f"payment plan {name!r}"
    if not PLAN_NAME.fullmatch(name):
        raise PlanError(f"{where}: a name is 1 to 32 lowercase letters, digits, - or _")
    if name == FULL:
        raise PlanError(f"{where}: 'full' is built in and cannot be replaced")
    if not isinstance(raw, dict):
        raise PlanError(f"{where}: must be a table")
    unknown = sorted(set(raw) - PLAN_KEYS)
    if unknown:
        raise PlanError(f"{where}: unknown key {unknown[0]!r}")
    title = raw.get("title")
    if not isinstance(title, str) or not title.strip():
        raise PlanError(f"{where}: title must be a non-empty string")
    currencies = raw.get("currencies")
    if not isinstance(currencies, list) or not currencies:
        raise PlanError(f"{where}: currencies must list at least one currency code")
    for code in currencies:
        if not known_currency(code):
            raise PlanError(f"{where}: {code!r} is not an ISO 4217 currency code")
    min_amount = raw.get("min_amount", "0")
    for code in currencies:
        if not isinstance(min_amount, str) or parse_amount(min_amount, code) is None:
            raise PlanError(
                f"{where}: min_amount {min_amount!r} is not an amount in {code} "
                '(a string with the currency\'s digits, e.g. "1000.00" for INR)'
            )
    reminders = raw.get("remind_hours_before_due", [])
    if not isinstance(reminders, list):
        raise PlanError(f"{where}: remind_hours_before_due must be a list of hours")
    reminders = [_number(h, where, "remind_hours_before_due") for h in reminders]
    if len(set(reminders)) != len(reminders):
        raise PlanError(f"{where}: remind_hours_before_due lists an hour twice")
    raw_parts = raw.get("parts")
    if not isinstance(raw_parts, list) or not raw_parts:
        raise PlanError(f"{where}: parts must list at least one part")
    parts = tuple(
        _part(part, f"{where}, part {seq}", seq == 1) for seq, part in enumerate(raw_parts, 1)
    )
    total = sum(part.percent for part in parts)
    if total != 100:
        raise PlanError(f"{where}: the parts' percentages add up to {float(total):g}, not 100")
    dues = [part.due_hours_before_departure or 0.0 for part in parts[1:]]
    for seq, (earlier, later) in enumerate(pairwise(dues), 3):
        if later >= earlier:
            raise PlanError(
                f"{where}, part {seq}: falls due {later:g} h before departure, not after "
                f"part {seq - 1} ({earlier:g} h): each part must fall due after the one before"
            )
    return Plan(
        name=name,
        title=title.strip(),
        parts=parts,
        min_hours_before_departure=_number(
            raw.get("min_hours_before_departure", 0), where, "min_hours_before_departure"
        ),
        min_amount=min_amount,
        currencies=frozenset(currencies),
        remind_hours_before_due=tuple(reminders),
    )


def parse_plans(text: str) -> MappingProxyType[str, Plan]:
    """The plans of a TOML text, `full` first; PlanError naming the plan and the problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise PlanError(f"payment plans: not TOML ({error})") from error
    unknown = sorted(set(data) - {"plans"})
    if unknown:
        raise PlanError(f"payment plans: unknown key {unknown[0]!r} (plans are [plans.<name>])")
    tables = data.get("plans", {})
    if not isinstance(tables, dict):
        raise PlanError("payment plans: plans must be tables, [plans.<name>]")
    plans = {FULL: FULL_PLAN}
    for name, raw in tables.items():
        plans[name] = parse_plan(name, raw)
    return MappingProxyType(plans)


DEFAULT_PLANS = parse_plans(DEFAULT_PLANS_TOML)


@lru_cache(maxsize=8)
def load_plans(path: str) -> MappingProxyType[str, Plan]:
    """The plans in force: the file's, or the built-in ones when `path` is empty."""
    if not path:
        return DEFAULT_PLANS
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PlanError(f"payment plans: cannot read {path}: {error}") from error
    return parse_plans(text)


def due_times(plan: Plan, departs_at: datetime) -> tuple[datetime | None, ...]:
    """When each part falls due: None for the first, then hours before departure."""
    return tuple(
        None
        if rule.due_hours_before_departure is None
        else departs_at - timedelta(hours=rule.due_hours_before_departure)
        for rule in plan.parts
    )


def charges_floor(ticket: Ticket, rules: Rules, at: datetime) -> int:
    """Charge plus GST that all of the booking's passengers would bear as confirmed
    passengers cancelled at `at`; the whole amount when the chart would be prepared."""
    confirmed = replace(ticket, paid=True, confirmed=True)  # quote() reads no cancellations
    offer = quote(confirmed, list(range(1, len(ticket.passengers) + 1)), rules, at)
    if not offer.cancellable:
        return ticket.amount
    return offer.charge + offer.gst


def split(plan: Plan, ticket: Ticket, rules: Rules) -> tuple[Part, ...]:
    """The parts of `ticket.amount` (minor units) on `plan` under `rules`.

    Every part after the first is its percentage of the amount rounded down, and the first
    is the rest, so the parts add up to the amount exactly. With `cover_charges` the first
    part is raised to at least the charges due if the booking were cancelled when the
    second part falls due (capped at the amount), taken from the last part backwards.
    """
    amount = ticket.amount
    dues = due_times(plan, ticket.departs_at)
    later = [
        int((Decimal(amount) * rule.percent / 100).to_integral_value(ROUND_FLOOR))
        for rule in plan.parts[1:]
    ]
    first = amount - sum(later)
    if plan.parts[0].cover_charges and len(plan.parts) > 1:
        second_due = dues[1]
        assert second_due is not None  # every later part has a due time (parse_plan)
        floor = min(charges_floor(ticket, rules, second_due), amount)
        raise_by = max(floor - first, 0)
        first += raise_by
        for index in reversed(range(len(later))):
            taken = min(raise_by, later[index])
            later[index] -= taken
            raise_by -= taken
    amounts = [first, *later]
    return tuple(Part(seq, amounts[seq - 1], dues[seq - 1]) for seq in range(1, len(amounts) + 1))


def offered(plans: Mapping[str, Plan], ticket: Ticket, now: datetime) -> tuple[Plan, ...]:
    """The plans this booking may choose at `now`, `full` first: departure far enough
    away, the amount and currency allowed, and every later part falling due in the future."""
    chosen = [FULL_PLAN]
    left = ticket.departs_at - now
    for plan in plans.values():
        if plan.name == FULL or ticket.currency not in (plan.currencies or ()):
            continue
        if left < timedelta(hours=plan.min_hours_before_departure):
            continue
        if ticket.amount < plan.min_minor(ticket.currency):
            continue
        if any(due is not None and due <= now for due in due_times(plan, ticket.departs_at)):
            continue
        chosen.append(plan)
    return tuple(chosen)


def describe(parts: tuple[Part, ...], currency: str) -> str:
    """The parts as a passenger reads them: "₹612.50 now · ₹1,837.50 by 12 Jan, 14:30 IST"."""
    return " · ".join(
        f"{format_money(part.amount, currency)} "
        + ("now" if part.due_at is None else f"by {format_due(part.due_at)}")
        for part in parts
    )
