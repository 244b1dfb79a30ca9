"""Trains, bookings and the profile: the passenger's side of the app."""

from __future__ import annotations

from collections import defaultdict
from functools import partial

from quart import Blueprint, Response, current_app, flash, jsonify, redirect, request, url_for
from quart_auth import login_required
from tortoise.exceptions import IntegrityError

from railserve.auth import current_user_id
from railserve.bounds import NAME, PNR
from railserve.errors import Conflict, Invalid
from railserve.htmx import render_page_or_partial, wants_json
from railserve.models import Booking, Mail, Notification, Train, User, closed_reason
from railserve.money import format_amount, parse_amount
from railserve.payment import parts
from railserve.payment.models import Payment, Refund
from railserve.payment.refunds import opening
from railserve.payment.rules import Quote
from railserve.payment.service import now_utc
from railserve.seats import waitlist_positions

bp = Blueprint("booking", __name__)

MAX_PASSENGERS = 6
MAX_ID = 2**31 - 1


def new_pnr() -> str:
    return PNR.new()


def clean_passengers(names: list[str]) -> list[str]:
    cleaned = [name.strip() for name in names]
    if not 1 <= len(cleaned) <= MAX_PASSENGERS:
        raise Invalid(
            f"Add between 1 and {MAX_PASSENGERS} passengers.",
            errors={"passenger_name": f"Add between 1 and {MAX_PASSENGERS} passengers."},
        )
    if not all(NAME.fits(name) and name.isprintable() for name in cleaned):
        message = f"Each passenger needs a name of {NAME.words} printable characters."
        raise Invalid(message, errors={"passenger_name": message})
    return cleaned


def parse_id(raw: str | None) -> int | None:
    raw = (raw or "").strip()
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 10:
        return None
    value = int(raw)
    return value if 0 < value <= MAX_ID else None


async def create_booking(user_id: int, train_id_raw: str | None, names: list[str]) -> Booking:
    train_id = parse_id(train_id_raw)
    train = await Train.get_or_none(id=train_id) if train_id else None
    if train is None:
        raise Invalid("Choose a train from the list.", errors={"train_id": "Choose a train."})
    if why := closed_reason(train, now_utc()):
        raise Conflict(why, errors={"train_id": why})
    passengers = clean_passengers(names)
    for _ in range(5):
        try:
            return await Booking.create(
                pnr=new_pnr(),
                user_id=user_id,
                train_id=train.id,
                passengers=passengers,
                passenger_count=len(passengers),
                amount=train.fare * len(passengers),
                currency=train.currency,
            )
        except IntegrityError:  # a PNR collision: draw again
            continue
    raise RuntimeError("could not draw a unique PNR")


async def open_trains() -> list[Train]:
    """Trains that still take bookings: not cancelled, not departed."""
    return await Train.filter(cancelled_at=None, departs_at__gt=now_utc())


@bp.get("/")
@login_required
async def home() -> Response:
    """List trains with seats left and fare."""
    trains = await open_trains()
    # Without JavaScript, "add passenger" is a link that asks for one more row.
    rows = parse_id(request.args.get("passengers")) or 1
    return await render_page_or_partial(
        "booking/home.html",
        "booking/_trains.html",
        trains=trains,
        values={},
        errors={},
        rows_for=request.args.get("train", "")[:10],
        rows=min(rows, MAX_PASSENGERS),
    )


@bp.post("/bookings")
@login_required
async def book() -> Response:
    """Hold seats for a train and go to the payment page."""
    form = await request.form
    if (rows := parse_id(form.get("rows"))) is not None:
        return await _passenger_rows(form, min(rows, MAX_PASSENGERS))
    try:
        booking = await create_booking(
            current_user_id(), form.get("train_id"), form.getlist("passenger_name")
        )
    except (Invalid, Conflict) as error:
        trains = await open_trains()
        return await render_page_or_partial(
            "booking/home.html",
            "booking/_trains.html",
            status=error.status,
            trains=trains,
            errors=error.errors,
            message=error.message,
            failed_train=parse_id(form.get("train_id")),
            values={"passenger_name": form.getlist("passenger_name")},
        )
    return redirect(url_for("payment.pay", booking_id=booking.id), 303)


async def _passenger_rows(form, rows: int) -> Response:
    """The booking form again with one passenger row more or less, names kept (no JavaScript)."""
    names = [name[:60] for name in form.getlist("passenger_name")][:rows]
    return await render_page_or_partial(
        "booking/home.html",
        "booking/_trains.html",
        trains=await Train.filter(cancelled_at=None),
        errors={},
        kept_train=parse_id(form.get("train_id")),
        values={"passenger_name": names + [""] * (rows - len(names))},
    )


def parse_positions(raw: list[str]) -> list[int]:
    """Passenger positions from repeated `passenger` fields; 422 on anything else."""
    positions = [parse_id(value) for value in raw]
    if any(p is None or p > MAX_PASSENGERS for p in positions):
        message = f"Passengers are numbered 1 to {MAX_PASSENGERS}."
        raise Invalid(message, errors={"passenger": message})
    return [p for p in positions if p is not None]


def quote_json(booking: Booking, offer: Quote, paid: int = 0, balance_due: bool = False) -> dict:
    """The quote as JSON; `paid` is what the booking's payments took, less refunds. While a
    part is still due only the totals apply: what was paid less the charges."""
    digits = partial(format_amount, currency=offer.currency)
    refund = max(paid - offer.charge - offer.gst, 0) if balance_due else offer.refund
    return {
        "booking_id": booking.id,
        "currency": offer.currency,
        "cancellable": offer.cancellable,
        "reason": offer.reason,
        "rule": offer.rule,
        "passengers": [
            {
                "position": p.position,
                "name": p.name,
                "fare": digits(p.fare),
                "charge": digits(p.charge),
                "gst": digits(p.gst),
                "refund": None if balance_due else digits(p.refund),
            }
            for p in offer.passengers
        ],
        "charge": digits(offer.charge),
        "gst": digits(offer.gst),
        "refund": digits(refund),
        "paid": digits(paid),
    }


@bp.get("/bookings/<dbid:booking_id>/cancel")
@login_required
async def cancel_quote(booking_id: int) -> Response:
    """Show what cancelling the chosen passengers would refund, and a form to confirm."""
    settings = current_app.config["RAILSERVE"]
    positions = parse_positions(request.args.getlist("passenger"))
    booking, offer = await opening.quote_for(settings, current_user_id(), booking_id, positions)
    paid = await parts.paid_in(booking.id)
    due = booking.plan != "full" and await parts.balance_due(booking.id)
    if wants_json():
        return jsonify(quote_json(booking, offer, paid, due))
    # No passenger asked for means every passenger still booked (as in the JSON); the page
    # says so in words, so nobody confirms a whole cancellation without noticing.
    all_by_default = not positions and len(booking.active_passengers) > 1
    return await render_page_or_partial(
        "booking/cancel.html",
        "booking/_cancel.html",
        booking=booking,
        quote=offer,
        all_by_default=all_by_default,
        balance_due=due,
        refund=max(paid - offer.charge - offer.gst, 0) if due else offer.refund,
    )


@bp.post("/bookings/<dbid:booking_id>/cancel")
@login_required
async def cancel(booking_id: int) -> Response:
    """Cancel passengers (all by default); a paid booking's refund is recorded first."""
    settings = current_app.config["RAILSERVE"]
    form = await request.form
    positions = parse_positions(form.getlist("passenger"))
    expected = None
    if (raw := form.get("expected_refund", "").strip()) != "":
        currency = await Booking.filter(id=booking_id).values_list("currency", flat=True)
        expected = parse_amount(raw, currency[0] if currency else "INR")
        if expected is None:
            message = "expected_refund must be an amount such as 1250.00."
            raise Invalid(message, errors={"expected_refund": message})
    gateway = current_app.extensions["railserve.gateway"]
    message = await opening.cancel(
        gateway, settings, current_user_id(), booking_id, positions, expected
    )
    await flash(message, "success")
    return redirect(url_for("booking.profile"), 303)


@bp.get("/profile")
@login_required
async def profile() -> Response:
    """Show bookings, payments, notifications and sent mail."""
    user_id = current_user_id()
    user = await User.get(id=user_id)
    bookings = await Booking.filter(user_id=user_id).select_related("train").order_by("-id")
    payments = await Payment.filter(user_id=user_id).order_by("-id")
    attempts: dict[int, list[Payment]] = defaultdict(list)
    for payment in payments:
        attempts[payment.booking_id].append(payment)
    positions = await waitlist_positions(bookings)
    refunds_by_booking: dict[int, list[Refund]] = defaultdict(list)
    paid_by = {p.id: p for p in payments}
    for refund in await Refund.filter(payment_id__in=list(paid_by)).order_by("id"):
        refund.method = paid_by[refund.payment_id].method  # when to expect it depends on it
        refunds_by_booking[paid_by[refund.payment_id].booking_id].append(refund)
    notifications = await Notification.filter(user_id=user_id).order_by("-id").limit(50)
    mails = await Mail.filter(user_id=user_id).order_by("-id").limit(50)
    return await render_page_or_partial(
        "booking/profile.html",
        "booking/profile.html",
        user=user,
        bookings=bookings,
        attempts=attempts,
        payments=payments,
        positions=positions,
        refunds_by_booking=refunds_by_booking,
        notifications=notifications,
        mails=mails,
        bookings_by_id={b.id: b for b in bookings},
        standings=await parts.standings(bookings),
    )


@bp.post("/notifications/read")
@login_required
async def mark_read() -> Response:
    """Mark every notification as read."""
    await Notification.filter(user_id=current_user_id(), read=False).update(read=True)
    return redirect(url_for("booking.profile") + "#notifications", 303)
