"""Thin handlers: parse the request, call the service, render page, partial or JSON."""

from __future__ import annotations

import re
import secrets

from quart import (
    Blueprint,
    Response,
    current_app,
    flash,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from quart_auth import login_required

from railserve.auth import current_user_id
from railserve.errors import Invalid, NotFound
from railserve.htmx import is_htmx, render_page_or_partial, wants_json
from railserve.limits import payment_limits
from railserve.models import Booking, BookingStatus
from railserve.money import format_amount
from railserve.payment import service
from railserve.payment import webhook as webhooks
from railserve.payment.forms import BANKS, WALLET_LABELS, WALLETS
from railserve.payment.models import METHOD_LABELS, Payment, PaymentMethod, PaymentStatus
from railserve.payment.simulator import TEST_TRIGGERS
from railserve.seats import waitlist_position

payment_bp = Blueprint("payment", __name__, url_prefix="/payment")


# Security fix (tests/security): ids were cut to 19 characters, so /status/<id>junk showed
# (and /cancel/<id>junk cancelled) the attempt; only the exact id names it.
TRANSACTION_ID = re.compile(r"TXN[A-Z0-9]{16}")


def exact_id(transaction_id: str) -> str:
    if not TRANSACTION_ID.fullmatch(transaction_id):
        raise NotFound("No such payment.")
    return transaction_id


def _gateway():
    return current_app.extensions["railserve.gateway"]


def new_idempotency_key() -> str:
    return secrets.token_urlsafe(24)


def form_context(booking: Booking, values: dict | None = None, errors: dict | None = None) -> dict:
    """What the pay form needs: choices, a fresh key, and the values to show again."""
    values = dict(values or {})
    for secret in ("card_number", "card_cvv"):  # never echo card data back
        values.pop(secret, None)
    return {
        "booking": booking,
        "idempotency_key": new_idempotency_key(),
        "methods": list(METHOD_LABELS.items()),
        "banks": BANKS,
        "wallets": [(w, WALLET_LABELS[w]) for w in WALLETS],
        "values": values,
        "errors": errors or {},
        "amount": format_amount(booking.amount),
        "test_triggers": TEST_TRIGGERS
        if current_app.config["RAILSERVE"].show_test_triggers
        else (),
    }


async def status_context(payment: Payment, booking: Booking | None = None) -> dict:
    if booking is None:
        booking = await Booking.get(id=payment.booking_id).select_related("train")
    context = {
        "payment": payment,
        "booking": booking,
        "polling": payment.status == PaymentStatus.PENDING,
        "position": await waitlist_position(booking),
    }
    if payment.status in (PaymentStatus.FAILED, PaymentStatus.CANCELLED) and (
        booking.status == BookingStatus.PENDING_PAYMENT
    ):
        context.update(form_context(booking, {"method": payment.method.value}))
        context["retry"] = True
    return context


def status_json(summary: dict) -> dict:
    """The contract's JSON status, from `service.status_summary`."""
    status = str(summary["status"])
    return {
        "transaction_id": summary["transaction_id"],
        "status": status,
        "booking_id": summary["booking_id"],
        "booking_status": str(summary["booking_status"]),
        "amount": format_amount(summary["amount"]),
        "currency": summary["currency"],
        "method": str(summary["method"]),
        "failure_reason": summary["failure_reason"]
        if status in (PaymentStatus.FAILED, PaymentStatus.CANCELLED)
        else None,
    }


@payment_bp.get("/pay/<dbid:booking_id>")
@login_required
async def pay(booking_id: int) -> Response:
    """Show the payment page for a booking."""
    booking = await service.owned_booking(current_user_id(), booking_id)
    if booking.status in (BookingStatus.CONFIRMED, BookingStatus.WAITLISTED):
        await flash(f"Booking {booking.pnr} is already paid.", "info")
        return redirect(url_for("booking.profile"), 303)
    attempts = await Payment.filter(booking_id=booking.id).order_by("-id")
    pending = next((p for p in attempts if p.status == PaymentStatus.PENDING), None)
    return await render_page_or_partial(
        "payment/pay.html",
        "payment/_form.html",
        attempts=attempts,
        pending=pending,
        payable=booking.status == BookingStatus.PENDING_PAYMENT,
        **form_context(booking),
    )


@payment_bp.post("/process/<dbid:booking_id>")
@login_required
@payment_limits
async def process(booking_id: int) -> Response:
    """Start a payment attempt; the gateway answers in the background."""
    form = await request.form
    user_id = current_user_id()
    try:
        payment, _created = await service.start_attempt(_gateway(), user_id, booking_id, form)
    except Invalid as error:
        booking = await service.owned_booking(user_id, booking_id)
        attempts = await Payment.filter(booking_id=booking.id).order_by("-id")
        return await render_page_or_partial(
            "payment/pay.html",
            "payment/_form.html",
            status=error.status,
            message=error.message,
            attempts=attempts,
            pending=None,
            payable=True,
            **form_context(booking, dict(form), error.errors),
        )
    except service.AttemptPending as error:
        return await _conflict_with_pending(error)
    if is_htmx():
        return await render_page_or_partial(
            "payment/status.html", "payment/_status.html", **await status_context(payment)
        )
    return redirect(url_for("payment.status", transaction_id=payment.transaction_id), 303)


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
        summary = await service.status_summary(current_user_id(), exact_id(transaction_id))
        return jsonify(status_json(summary))
    payment = await service.owned_payment_with_booking(current_user_id(), exact_id(transaction_id))
    return await render_page_or_partial(
        "payment/status.html",
        "payment/_status.html",
        **await status_context(payment, payment.booking),
    )


@payment_bp.post("/cancel/<transaction_id>")
@login_required
async def cancel(transaction_id: str) -> Response:
    """Stop a pending attempt."""
    payment = await service.cancel_attempt(current_user_id(), exact_id(transaction_id))
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
    if payment.status not in (PaymentStatus.SUCCESS, PaymentStatus.REFUNDED):
        raise NotFound("There is no receipt for a payment that did not succeed.")
    booking = await Booking.get(id=payment.booking_id).select_related("train")
    body = await render_template(
        "payment/receipt.html",
        payment=payment,
        booking=booking,
        method_label=PaymentMethod(payment.method).label,
    )
    return Response(body)


@payment_bp.post("/webhook")
async def webhook() -> Response:
    """Apply a signed gateway event."""
    raw = await request.get_data()
    outcome = await webhooks.handle(
        current_app.config["RAILSERVE"],
        _gateway(),
        raw,
        request.headers.get("RailServe-Signature"),
    )
    return jsonify({"ok": True, "result": outcome})
