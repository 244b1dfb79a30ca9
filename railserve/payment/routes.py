"""Thin handlers: parse the request, call the service, render page, partial or JSON."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from quart import (
    Blueprint,
    Response,
    current_app,
    flash,
    jsonify,
    make_response,
    redirect,
    request,
    stream_with_context,
    url_for,
)
from quart_auth import login_required

from railserve.auth import current_user_id
from railserve.bounds import exact_transaction_id as exact_id
from railserve.config import Settings
from railserve.errors import Conflict, Invalid, NotFound, Unavailable
from railserve.htmx import is_htmx, render_page_or_partial, wants_json
from railserve.limits import payment_limits
from railserve.models import Booking, BookingStatus, closed_reason
from railserve.money import format_amount
from railserve.payment import cancelling, live, parts, service, status_card
from railserve.payment.advice import advice_for
from railserve.payment.forms import BANKS, WALLET_LABELS, WALLETS
from railserve.payment.live.stream import card_is_final, stream
from railserve.payment.models import (
    METHOD_LABELS,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Refund,
    RefundStatus,
)
from railserve.payment.plans import FULL
from railserve.payment.providers.router import Gateways
from railserve.payment.webhook.log import handle_logged
from railserve.seats import waitlist_position
from railserve.templating import render

payment_bp = Blueprint("payment", __name__, url_prefix="/payment")
RECEIPTED = PaymentStatus.CAPTURED


# Security fix (tests/security): ids were cut to 19 characters, so /status/<id>junk showed
# (and /cancel/<id>junk cancelled) the attempt; only the exact id names it.


def _gateways() -> Gateways:
    return current_app.extensions["railserve.gateways"]


def new_idempotency_key() -> str:
    return secrets.token_urlsafe(24)


def _settings() -> Settings:
    return current_app.config["RAILSERVE"]


def form_context(
    booking: Booking,
    values: dict | None = None,
    errors: dict | None = None,
    due: parts.Due | None = None,
) -> dict:
    """What the pay form needs: choices, a fresh key, and the values to show again.

    `due`: what the form pays when the booking is paid in parts (default: the amount)."""
    values = dict(values or {})
    for secret in ("card_number", "card_cvv"):  # never echo card data back
        values.pop(secret, None)
    amount_due = due.amount if due is not None else booking.amount
    return {
        "booking": booking,
        "due": due,
        "amount_due": amount_due,
        "plan": (due.plan if due is not None else None) or FULL,
        "idempotency_key": new_idempotency_key(),
        "methods": list(METHOD_LABELS.items()),
        "banks": BANKS,
        "wallets": [(w, WALLET_LABELS[w]) for w in WALLETS],
        "values": values,
        "errors": errors or {},
        "amount": format_amount(amount_due, booking.currency),
        "unavailable": _gateways().unavailable_methods(),
        "test_triggers": _gateways().test_triggers()
        if current_app.config["RAILSERVE"].show_test_triggers
        else (),
    }


async def status_context(payment: Payment, booking: Booking | None = None) -> dict:
    if booking is None:
        booking = await Booking.get(id=payment.booking_id).select_related("train")
    refunds = await refunds_of(payment)
    refund_open = any(r.status in RefundStatus.OPEN for r in refunds)
    context = {
        "payment": payment,
        "booking": booking,
        "polling": payment.status == PaymentStatus.PENDING,
        "live": not card_is_final(payment.status, refund_open),
        "position": await waitlist_position(booking),
        "refunds": refunds,
        "part": None,
    }
    if payment.part_id and payment.status in RECEIPTED:  # paid in parts: one more query
        standing = await parts.standing(booking.id, booking.plan)
        if standing is not None:
            context["standing"] = standing
            context["part"] = next((p for p in standing.parts if p.id == payment.part_id), None)
    if payment.status in PaymentStatus.UNSUCCESSFUL:
        # Advice and a retry belong to the latest attempt of a booking still to pay; an older
        # card says what became of the booking instead.
        later = await Payment.filter(booking_id=booking.id, id__gt=payment.id).exists()
        context["superseded"] = later
        advice = advice_for(payment.status.value, payment.failure_reason, payment.refunded_amount)
        if booking.status == BookingStatus.PENDING_PAYMENT and not later:
            # A retry pays what the failed attempt would have: the same part of the same plan.
            due = parts.Due(payment.amount, booking.plan) if payment.part_id else None
            context.update(form_context(booking, {"method": payment.method.value}, due=due))
            context["retry"] = True
            context["hold_until"] = hold_until(booking)
            context["advice"] = advice
        elif payment.part_id and not later:
            # A later part's attempt failed: the retry pays the part still due, if any.
            part = await parts.next_due(booking)
            if part is not None and (part.due_at is None or part.due_at > service.now_utc()):
                due = parts.Due(part.amount, part=part)
                context.update(form_context(booking, {"method": payment.method.value}, due=due))
                context["retry"] = True
                context["advice"] = advice
        context["support_refs"] = [
            ("transaction id", payment.transaction_id),
            ("PNR", booking.pnr),
        ]
    return context


def hold_until(booking: Booking) -> datetime:
    """When an unpaid booking's seats stop being held (RAILSERVE_BOOKING_HOLD)."""
    hold = current_app.config["RAILSERVE"].booking_hold
    return booking.created_at + timedelta(seconds=hold)


async def refunds_of(payment: Payment) -> list[Refund]:
    """The attempt's refunds, each knowing when its money arrives (no query when none)."""
    if not payment.refunded_amount:
        return []
    found = await Refund.filter(payment_id=payment.id).order_by("id")
    for refund in found:
        refund.method = payment.method
    return found


async def status_json(summary: dict) -> dict:
    """The contract's JSON status, from `status_card.status_summary` (and, on a plan only,
    one more query for its parts)."""
    status = str(summary["status"])
    part = plan = None
    standing = await parts.standing(summary["booking_id"], summary["booking_plan"])
    if standing is not None:
        plan = standing.json(summary["currency"])
        mine = next((p for p in standing.parts if p.id == summary["part_id"]), None)
        if mine is not None:
            part = {"seq": mine.seq, "of": mine.of}
    return {
        "transaction_id": summary["transaction_id"],
        "status": status,
        "booking_id": summary["booking_id"],
        "booking_status": str(summary["booking_status"]),
        "amount": format_amount(summary["amount"], summary["currency"]),
        "currency": summary["currency"],
        "method": str(summary["method"]),
        "failure_reason": summary["failure_reason"]
        if status in PaymentStatus.UNSUCCESSFUL
        else None,
        "refunded_amount": format_amount(summary["refunded_amount"], summary["currency"]),
        "gateway": summary["gateway"],
        "advice": advice_for(status, summary["failure_reason"], summary["refunded_amount"]),
        "part": part,
        "plan": plan,
    }


@payment_bp.get("/pay/<dbid:booking_id>")
@login_required
async def pay(booking_id: int) -> Response:
    """Show the payment page for a booking (`?plan=`: the form for that plan)."""
    booking, attempts = await service.booking_with_attempts(current_user_id(), booking_id)
    now = service.now_utc()
    due: parts.Due | None = None
    offer: tuple[parts.Choice, ...] = ()
    if booking.status in BookingStatus.PAID:
        part = await parts.next_due(booking)
        if part is None or (part.due_at is not None and part.due_at <= now):
            await flash(f"Booking {booking.pnr} is already paid.", "info")
            return redirect(url_for("booking.profile"), 303)
        due = parts.Due(part.amount, part=part)
    elif why := closed_reason(booking.train, now):
        raise Conflict(why)
    elif booking.status == BookingStatus.PENDING_PAYMENT:
        offer = parts.choices(_settings(), booking, now)
        chosen = request.args.get("plan", FULL)
        choice = next((c for c in offer if c.plan.name == chosen), offer[0])
        if choice.plan.name != FULL:
            due = parts.Due(choice.parts[0].amount, choice.plan.name, choice.parts)
    standing = (
        None if due is None or due.part is None else await parts.standing(booking.id, booking.plan)
    )
    pending = next((p for p in attempts if p.status == PaymentStatus.PENDING), None)
    return await render_page_or_partial(
        "payment/pay.html",
        "payment/_form.html",
        attempts=attempts,
        pending=pending,
        payable=booking.status == BookingStatus.PENDING_PAYMENT or due is not None,
        offer=offer if len(offer) > 1 else (),
        standing=standing,
        **form_context(booking, due=due),
    )


@payment_bp.post("/process/<dbid:booking_id>")
@login_required
@payment_limits
async def process(booking_id: int) -> Response:
    """Start a payment attempt; the gateway answers in the background."""
    form = await request.form
    user_id = current_user_id()
    try:
        payment, _created = await service.start_attempt(
            _gateways(), user_id, booking_id, form, _settings()
        )
    except (Invalid, Unavailable) as error:
        if isinstance(error, Unavailable) and wants_json():
            raise
        # The form again, with the message: a 503 means no gateway takes the method now.
        booking = await service.owned_booking(user_id, booking_id)
        due = await _due_or_none(booking, form.get("plan"))
        attempts = await Payment.filter(booking_id=booking.id).order_by("-id")
        return await render_page_or_partial(
            "payment/pay.html",
            "payment/_form.html",
            status=error.status,
            message=error.message,
            attempts=attempts,
            pending=None,
            payable=True,
            **form_context(booking, dict(form), error.errors, due),
        )
    except service.AttemptPending as error:
        return await _conflict_with_pending(error)
    if is_htmx():
        return await render_page_or_partial(
            "payment/status.html", "payment/_status.html", **await status_context(payment)
        )
    return redirect(url_for("payment.status", transaction_id=payment.transaction_id), 303)


async def _due_or_none(booking: Booking, chosen: str | None) -> parts.Due | None:
    """What the form shown again pays (None: the whole amount, or nothing to pay)."""
    try:
        due = await parts.what_to_pay(_settings(), booking, chosen, service.now_utc())
    except (Invalid, Conflict):
        return None
    return None if due.plan is None and due.part is None else due


async def _conflict_with_pending(error: service.AttemptPending) -> Response:
    if wants_json():
        body = {"error": error.message, "transaction_id": error.payment.transaction_id}
        return await make_response(jsonify(body), 409)
    return await render_page_or_partial(
        "payment/status.html",
        "payment/_status.html",
        status=409,
        message=error.message,
        **await status_context(error.payment),
    )


@payment_bp.get("/status/<transaction_id>")
@login_required
async def status(transaction_id: str) -> Response:
    """Show an attempt's status: full page, self-polling partial, or JSON."""
    if wants_json():  # the hottest request: one query, no model objects, no template
        summary = await status_card.status_summary(current_user_id(), exact_id(transaction_id))
        return jsonify(await status_json(summary))
    payment = await status_card.owned_payment_with_booking(
        current_user_id(), exact_id(transaction_id), page=not is_htmx()
    )
    return await render_page_or_partial(
        "payment/status.html",
        "payment/_status.html",
        **await status_context(payment, payment.booking),
    )


@payment_bp.get("/events/<transaction_id>")
@login_required
async def events(transaction_id: str) -> Response:
    """Stream an attempt's status card as server-sent events."""
    payment = await service.owned_payment(current_user_id(), exact_id(transaction_id))
    return await live_response(payment)


async def live_response(payment: Payment) -> Response:
    """The card now and after every change, as `text/event-stream`."""

    payment_id = payment.id  # the stream keeps the id, not the model object

    async def card() -> tuple[str, bool]:
        # One query for a pending card (attempt, booking and train joined).
        fresh = await Payment.filter(id=payment_id).select_related("booking__train").get()
        context = await status_context(fresh, fresh.booking)
        html = await render("payment/_status.html", **context)
        return html, not context["live"]

    keys = (live.transaction_key(payment.transaction_id), live.booking_key(payment.booking_id))
    body = stream_with_context(stream)(
        current_app.extensions["railserve.live"],
        keys,
        card,
        current_app.config["LIVE_HEARTBEAT"],
        current_app.config["RAILSERVE"].stream_max_age,
    )
    response = await make_response(
        body,
        {
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "Transfer-Encoding": "chunked",
            "X-Accel-Buffering": "no",
        },
    )
    response.timeout = None
    return response


@payment_bp.post("/cancel/<transaction_id>")
@login_required
async def cancel(transaction_id: str) -> Response:
    """Stop a pending attempt."""
    payment = await cancelling.cancel_attempt(current_user_id(), exact_id(transaction_id))
    if is_htmx():
        return await render_page_or_partial(
            "payment/status.html", "payment/_status.html", **await status_context(payment)
        )
    return redirect(url_for("payment.status", transaction_id=payment.transaction_id), 303)


@payment_bp.get("/receipt/<transaction_id>")
@login_required
async def receipt(transaction_id: str) -> Response:
    """Show a printable receipt of a successful payment."""
    payment = await service.owned_payment(current_user_id(), exact_id(transaction_id))
    if payment.status not in RECEIPTED:
        raise NotFound("There is no receipt for a payment that did not succeed.")
    booking = await Booking.get(id=payment.booking_id).select_related("train")
    standing = await parts.standing(booking.id, booking.plan) if payment.part_id else None
    part = next((p for p in standing.parts if p.id == payment.part_id), None) if standing else None
    body = await render(
        "payment/receipt.html",
        part=part,
        standing=standing,
        payment=payment,
        refunds=await refunds_of(payment),
        booking=booking,
        method_label=PaymentMethod(payment.method).label,
    )
    return Response(body)


@payment_bp.post("/webhook")
async def webhook() -> Response:
    """Apply a signed event of the simulated gateway (RailServe's own format)."""
    return await _apply_webhook("simulated")


@payment_bp.post("/webhook/<provider>")
async def provider_webhook(provider: str) -> Response:
    """Apply a signed event in the named provider's own format."""
    return await _apply_webhook(provider)


async def _apply_webhook(provider: str) -> Response:
    gateways = _gateways()
    signature = request.headers.get(gateways.signature_header(provider))
    raw = await request.get_data()
    settings = current_app.config["RAILSERVE"]
    outcome = await handle_logged(settings, gateways, raw, signature, provider=provider)
    return jsonify({"ok": True, "result": outcome})
