"""Thin handlers of the console: parse, ask the queries or actions, render or redirect."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from quart import Response, current_app, flash, g, jsonify, redirect, request, url_for

from railserve.bounds import REFUND_ID, exact_transaction_id
from railserve.errors import DomainError, Invalid, NotFound
from railserve.htmx import is_htmx, render_page_or_partial, wants_json
from railserve.limits import operator_limits
from railserve.models import Booking
from railserve.money import format_amount
from railserve.ops import actions, dashboard, diagram, queries
from railserve.ops import ops_bp as bp
from railserve.ops import parts as part_list
from railserve.ops.reconciliation import differences, offline_settlements
from railserve.payment.models import (
    METHOD_LABELS,
    OperatorAction,
    PaymentEvent,
    PaymentStatus,
    Refund,
    WebhookLog,
)
from railserve.payment.parts import standing


def _settings():
    return current_app.config["RAILSERVE"]


def _gateway():
    return current_app.extensions["railserve.gateway"]


def filter_choices() -> dict:
    return {
        "statuses": [s.value for s in PaymentStatus],
        "methods": list(METHOD_LABELS.items()),
    }


@bp.get("", endpoint="dashboard")
async def dashboard_page() -> Response:
    """Show the last 24 hours at a glance; the partial refreshes itself."""
    settings = _settings()
    stuck_after = timedelta(seconds=settings.gateway_delay + 60)
    numbers = await dashboard.figures(datetime.now(UTC), stuck_after)
    peak = max((hour.total for hour in numbers.hours), default=0)
    return await render_page_or_partial(
        "ops/dashboard.html",
        "ops/_dashboard.html",
        f=numbers,
        peak=max(peak, 1),
        outcomes=dashboard.OUTCOMES,
    )


@bp.get("/payments")
async def payments() -> Response:
    """List every attempt, newest first, filtered and paged."""
    try:
        filters = queries.parse_filters(request.args)
    except Invalid as error:
        if wants_json():
            raise
        return await render_page_or_partial(
            "ops/payments.html",
            "ops/_payments.html",
            status=error.status,
            message=error.message,
            errors=error.errors,
            values=request.args,
            filters=None,
            result=None,
            **filter_choices(),
        )
    result = await queries.search(filters)
    if wants_json():
        return jsonify(
            {
                "payments": [queries.as_record(row) for row in result.payments],
                "page": result.page,
                "pages": result.pages,
                "total": result.total,
            }
        )
    return await render_page_or_partial(
        "ops/payments.html",
        "ops/_payments.html",
        filters=filters,
        result=result,
        values=request.args,
        errors={},
        **filter_choices(),
    )


@bp.get("/parts")
async def parts() -> Response:
    """List parts falling due in the next `hours` and parts missed in the last 7 days."""
    hours = part_list.parse_hours(request.args)
    rows = await part_list.listing(datetime.now(UTC), hours)
    if wants_json():
        return jsonify({"parts": rows})
    return await render_page_or_partial("ops/parts.html", "ops/parts.html", parts=rows, hours=hours)


@bp.get("/payments.csv")
async def payments_csv() -> Response:
    """Stream every matching attempt as CSV."""
    filters = queries.parse_filters(request.args)

    async def lines() -> AsyncIterator[bytes]:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=queries.CSV_FIELDS, lineterminator="\r\n")
        writer.writeheader()
        count = 0
        async for record in queries.export_rows(filters):
            writer.writerow(record)
            count += 1
            if count % queries.CSV_BATCH == 0:
                yield buffer.getvalue().encode()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue().encode()

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    response = Response(lines(), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="payments-{stamp}.csv"'
    response.timeout = None
    return response


async def detail_context(transaction_id: str) -> dict:
    payment = await actions.payment_or_404(exact_transaction_id(transaction_id))
    booking = await Booking.get(id=payment.booking_id).select_related("train", "user")
    return {
        "payment": payment,
        "booking": booking,
        "passenger": booking.user,
        "events": await PaymentEvent.filter(payment_id=payment.id).order_by("id"),
        "refunds": await Refund.filter(payment_id=payment.id).select_related("operator"),
        "webhooks": await WebhookLog.filter(transaction_id=payment.transaction_id)
        .order_by("-id")
        .limit(100),
        "refundable": payment.amount - (payment.refunded_amount or 0),
        "can_refund": payment.status in PaymentStatus.REFUNDABLE,
        "can_cancel": payment.status == PaymentStatus.PENDING,
        "lifecycle": diagram.render(str(payment.status)),
        "standing": await standing(booking.id, booking.plan),
    }


def detail_json(context: dict) -> dict:
    payment, booking = context["payment"], context["booking"]
    record = queries.as_record(
        {
            **{
                name: getattr(payment, name)
                for name in queries.CSV_FIELDS
                if hasattr(payment, name)
            },
            "pnr": booking.pnr,
            "email": context["passenger"].email,
        }
    )
    standing = context["standing"]
    record.update(
        booking_id=booking.id,
        booking_status=str(booking.status),
        plan=standing.json(booking.currency) if standing else None,
        passenger={"name": context["passenger"].name, "email": context["passenger"].email},
        events=[
            {
                "from": e.from_status,
                "to": e.to_status,
                "event": e.event,
                "actor": str(e.actor),
                "detail": e.detail,
                "at": queries.iso(e.created_at),
            }
            for e in context["events"]
        ],
        refunds=[
            {
                "refund_id": r.refund_id,
                "amount": format_amount(r.amount, r.currency),
                "status": str(r.status),
                "reason": r.reason,
                "actor": str(r.actor),
                "gateway_reference": r.gateway_reference,
                "offline_reference": r.offline_reference,
                "created_at": queries.iso(r.created_at),
            }
            for r in context["refunds"]
        ],
    )
    return record


@bp.get("/payments/<transaction_id>")
async def payment_detail(transaction_id: str) -> Response:
    """Show one attempt: booking, passenger, timeline, refunds, webhooks, lifecycle."""
    context = await detail_context(transaction_id)
    if wants_json():
        return jsonify(detail_json(context))
    return await render_page_or_partial(
        "ops/payment.html", "ops/_payment.html", errors={}, values={}, **context
    )


# A refused action is audited under the name its accepted form has (refunds/console.py's codes).
REFUSED_AS = {"retry_refund": "refund_retry", "settle_refund_offline": "offline"}


async def _act(transaction_id: str, do) -> Response:
    payment = await actions.payment_or_404(exact_transaction_id(transaction_id))
    form = await request.form
    try:
        done = await do(payment, form)
    except DomainError as error:
        action = (request.endpoint or "").rpartition(".")[2]
        action = REFUSED_AS.get(action, action)
        await actions.record_refusal(g.operator, action, payment.transaction_id, form, error)
        if wants_json():
            raise
        return await render_page_or_partial(
            "ops/payment.html",
            "ops/_payment.html",
            status=error.status,
            message=error.message,
            errors=error.errors,
            values=form,
            **await detail_context(transaction_id),
        )
    if wants_json():
        return jsonify({"ok": True, "message": done.message})
    if is_htmx():
        return await render_page_or_partial(
            "ops/payment.html",
            "ops/_payment.html",
            notice=done.message,
            errors={},
            values={},
            **await detail_context(transaction_id),
        )
    await flash(done.message, "success")
    return redirect(url_for("ops.payment_detail", transaction_id=payment.transaction_id), 303)


@bp.post("/payments/<transaction_id>/refund")
@operator_limits
async def refund(transaction_id: str) -> Response:
    """Refund an attempt (all that is still refundable unless an amount is given)."""
    return await _act(
        transaction_id,
        lambda p, form: actions.refund(_settings(), _gateway(), g.operator, p, form),
    )


@bp.post("/payments/<transaction_id>/reconcile")
@operator_limits
async def reconcile(transaction_id: str) -> Response:
    """Ask the gateway now about an attempt and its pending refunds."""
    return await _act(
        transaction_id,
        lambda p, form: actions.reconcile(_settings(), _gateway(), g.operator, p, form),
    )


@bp.post("/payments/<transaction_id>/cancel")
@operator_limits
async def cancel(transaction_id: str) -> Response:
    """Cancel a pending attempt."""
    return await _act(transaction_id, lambda p, form: actions.cancel(g.operator, p, form))


async def _act_on_refund(refund_id: str, do) -> Response:
    """An action on a refund answers like one on its payment (its detail page)."""
    refund = (
        await Refund.get_or_none(refund_id=refund_id).select_related("payment")
        if REFUND_ID.matches(refund_id)
        else None
    )
    if refund is None:
        raise NotFound("No such refund.")
    return await _act(refund.payment.transaction_id, lambda _payment, form: do(form))


@bp.post("/refunds/<refund_id>/retry")
@operator_limits
async def retry_refund(refund_id: str) -> Response:
    """Ask the gateway again for a failed refund."""
    return await _act_on_refund(
        refund_id,
        lambda form: actions.retry_refund(_settings(), _gateway(), g.operator, refund_id, form),
    )


@bp.post("/refunds/<refund_id>/settle-offline")
@operator_limits
async def settle_refund_offline(refund_id: str) -> Response:
    """Record a failed refund's money as returned outside the gateway."""
    return await _act_on_refund(
        refund_id, lambda form: actions.settle_refund_offline(g.operator, refund_id, form)
    )


@bp.get("/reconciliation")
async def reconciliation() -> Response:
    """Show where the gateway's ledger and the database disagree."""
    found = await differences(gateways=current_app.extensions["railserve.gateways"])
    offline = await offline_settlements()
    if wants_json():
        return jsonify(
            {
                "differences": [vars(d) for d in found],
                "settled_offline": [
                    {**vars(o), "settled_at": queries.iso(o.settled_at)} for o in offline
                ],
            }
        )
    return await render_page_or_partial(
        "ops/reconciliation.html",
        "ops/reconciliation.html",
        differences=found,
        settled_offline=offline,
    )


@bp.get("/audit")
async def audit() -> Response:
    """List every operator action, newest first."""
    page = queries.parse_page(request.args)
    total = await OperatorAction.all().count()
    page = min(page, queries.pages_of(total))  # past the end: the last page
    rows = (
        await OperatorAction.all()
        .select_related("operator")
        .order_by("-id")
        .offset((page - 1) * queries.PAGE_SIZE)
        .limit(queries.PAGE_SIZE)
    )
    return await render_page_or_partial(
        "ops/audit.html",
        "ops/audit.html",
        actions=rows,
        page_number=page,
        pages=queries.pages_of(total),
        total=total,
    )
