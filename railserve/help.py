"""The help page: answers to the questions passengers ask after a payment goes wrong.

The cancellation charges are rendered from the rules in force (RAILSERVE_REFUND_RULES),
never written into the template, so the page cannot drift from what is charged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from quart import Blueprint, Response, current_app

from railserve.display import format_major
from railserve.htmx import render_page_or_partial
from railserve.payment.plans import FULL, Plan, load_plans
from railserve.payment.rules import RULES_CURRENCY, Rules, load_rules
from railserve.vocabulary import travel_class as class_name

bp = Blueprint("help", __name__)

# The currency the rules' amounts are written in for the app's own trains.


@dataclass(frozen=True)
class ChargeTable:
    flat: list[tuple[str, str]]  # (classes, charge)
    windows: list[str]
    chart_prepared: str
    waitlist: str
    gst: str


def charge_table(rules: Rules) -> ChargeTable:
    """The rules in words and formatted amounts, for the help page."""
    by_amount: dict[str, list[str]] = {}
    for travel_class, amount in rules.flat_charge.items():
        by_amount.setdefault(format_major(amount, RULES_CURRENCY), []).append(travel_class)
    gst_classes = [c for c in rules.flat_charge if c in rules.gst_classes]
    return ChargeTable(
        flat=[
            (", ".join(map(class_name, classes)), amount) for amount, classes in by_amount.items()
        ],
        windows=[window.describe() + "." for window in rules.windows],
        chart_prepared=(
            f"Less than {rules.chart_hours:g} h before departure the chart is prepared: "
            "a confirmed ticket can no longer be cancelled online."
        ),
        waitlist=(
            f"Waitlisted ticket: a clerkage charge of {format_major(rules.clerkage, RULES_CURRENCY)}"
            f" per passenger, until {rules.waitlist_until.total_seconds() / 60:g} minutes "
            "before departure."
        ),
        gst=(
            f"GST at {rules.gst_percent:g} % is added to the charge for "
            f"{', '.join(gst_classes) or 'no class'}; none for the other classes."
        ),
    )


def plans_in_words(plans: Mapping[str, Plan]) -> list[tuple[str, list[str]]]:
    """Each plan but `full`: its title and a line per condition and part."""
    described = []
    for plan in plans.values():
        if plan.name == FULL:
            continue
        lines = [
            f"Offered when the train leaves at least {plan.min_hours_before_departure:g} h "
            f"from booking, for {', '.join(sorted(plan.currencies or ()))} fares of at least "
            f"{plan.min_amount}."
        ]
        for seq, part in enumerate(plan.parts, 1):
            when = (
                "now"
                if part.due_hours_before_departure is None
                else f"by {part.due_hours_before_departure:g} h before departure"
            )
            cover = ", at least the cancellation charges" if part.cover_charges else ""
            lines.append(f"Part {seq}: {part.percent:g} % of the fare {when}{cover}.")
        if plan.remind_hours_before_due:
            hours = " and ".join(f"{h:g} h" for h in plan.remind_hours_before_due)
            lines.append(f"We remind you {hours} before each part falls due.")
        described.append((plan.title, lines))
    return described


@bp.get("/help")
async def help_page() -> Response:
    """Answer the common questions: failed payments, refunds, charges, support."""
    settings = current_app.config["RAILSERVE"]
    return await render_page_or_partial(
        "help.html",
        "help.html",
        charges=charge_table(load_rules(settings.refund_rules)),
        plans=plans_in_words(load_plans(settings.payment_plans)),
    )
