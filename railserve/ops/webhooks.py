"""The log of every gateway event received, and the replay of a stored one."""

from __future__ import annotations

from quart import Response, current_app, flash, g, jsonify, redirect, request, url_for

from railserve.errors import DomainError, NotFound
from railserve.htmx import render_page_or_partial, wants_json
from railserve.limits import operator_limits
from railserve.ops import actions, queries
from railserve.ops import ops_bp as bp
from railserve.payment.models import WebhookLog


async def _log_page(page: int, **extra) -> dict:
    total = await WebhookLog.all().count()
    page = min(page, queries.pages_of(total))  # past the end: the last page
    entries = (
        await WebhookLog.all()
        .order_by("-id")
        .offset((page - 1) * queries.PAGE_SIZE)
        .limit(queries.PAGE_SIZE)
    )
    return {
        "entries": entries,
        "page_number": page,
        "pages": queries.pages_of(total),
        "total": total,
        **extra,
    }


@bp.get("/webhooks")
async def webhooks() -> Response:
    """List every gateway event received, valid or not, newest first."""
    context = await _log_page(queries.parse_page(request.args))
    if wants_json():
        return jsonify(
            {
                "webhooks": [
                    {
                        "id": e.id,
                        "provider": e.provider,
                        "event_id": e.event_id,
                        "type": e.type,
                        "transaction_id": e.transaction_id,
                        "signature_valid": e.signature_valid,
                        "status_code": e.status_code,
                        "result": e.result,
                        "received_at": queries.iso(e.received_at),
                        "body": e.body,
                    }
                    for e in context["entries"]
                ],
                "page": context["page_number"],
                "pages": context["pages"],
                "total": context["total"],
            }
        )
    return await render_page_or_partial("ops/webhooks.html", "ops/webhooks.html", **context)


async def _stored(event_id: str) -> WebhookLog | None:
    """The stored delivery an id names: the gateway's event id (PRODUCT.md), preferring a
    validly signed delivery, or the number of a log row (events without a usable id)."""
    if not event_id.isprintable():  # a NUL byte is no id (and PostgreSQL refuses it)
        return None
    if event_id.isascii() and event_id.isdigit():
        row = int(event_id)  # past the column's range (PostgreSQL refuses it): no such row
        return await WebhookLog.get_or_none(id=row) if 0 < row < 2**31 else None
    return (
        await WebhookLog.filter(event_id=event_id[:64]).order_by("-signature_valid", "-id").first()
    )


@bp.post("/webhooks/<event_id>/replay")
@operator_limits
async def replay(event_id: str) -> Response:
    """Apply a stored, validly signed event again through the webhook handler."""
    entry = await _stored(event_id)
    if entry is None:
        raise NotFound("No such webhook event.")
    log_id = entry.id
    form = await request.form
    settings = current_app.config["RAILSERVE"]
    gateway = current_app.extensions["railserve.gateway"]
    try:
        done = await actions.replay(settings, gateway, g.operator, entry, form)
    except DomainError as error:
        await actions.record_refusal(g.operator, "replay", entry.transaction_id, form, error)
        if wants_json():
            raise
        context = await _log_page(1, message=error.message, failed_id=log_id)
        return await render_page_or_partial(
            "ops/webhooks.html", "ops/webhooks.html", status=error.status, **context
        )
    if wants_json():
        return jsonify({"ok": True, "message": done.message})
    await flash(done.message, "success")
    return redirect(url_for("ops.webhooks"), 303)
