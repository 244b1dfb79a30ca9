"""The hooks the money path, the webhook, the live streams and the breakers call: one line
each at the caller, logged and counted here.

Moves made inside a transaction are told once it commits (db.atomic runs them), so a
rolled-back move is neither counted nor logged; outside one they are told at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from railserve.running import lines
from railserve.running.metrics import metrics

transitions_log = logging.getLogger("railserve.transition")
FINAL = frozenset(("success", "failed", "cancelled"))

_AFTER_COMMIT: ContextVar[tuple[object, list[Callable[[], None]]] | None] = ContextVar(
    "railserve_after_commit", default=None
)


@contextmanager
def told_after_commit() -> Iterator[list[Callable[[], None]]]:
    """Collect the moves of one transaction; the caller runs them once it has committed."""
    told: list[Callable[[], None]] = []
    token = _AFTER_COMMIT.set((asyncio.current_task(), told))
    try:
        yield told
    finally:
        _AFTER_COMMIT.reset(token)


def _tell(event: Callable[[], None]) -> None:
    waiting = _AFTER_COMMIT.get()
    # A task started inside the transaction inherits the variable, not the transaction.
    if waiting is None or waiting[0] is not asyncio.current_task():
        event()
    else:
        waiting[1].append(event)


def payment_moved(payment: Any, source: str | None, target: str, actor: Any) -> None:
    """A payment attempt changed state: log it, and count it once it is final."""
    source, target, actor = (str(source) if source else None), str(target), str(actor)
    transaction_id, method, gateway = payment.transaction_id, str(payment.method), payment.gateway
    settled = None
    started = getattr(payment, "created_at", None)
    if started is not None and source == "pending" and target in FINAL:
        ended = getattr(payment, "completed_at", None) or datetime.now(UTC)
        settled = max((ended - started).total_seconds(), 0.0)

    def tell() -> None:
        _log_move("payment", transaction_id, source, target, actor)
        if source != "pending" or target not in FINAL:
            return
        m = metrics()
        m.payment_attempts.labels(method, gateway, target).inc()
        if settled is not None:
            m.settle_seconds.observe(settled)

    _tell(tell)


def refund_moved(refund: Any, source: str | None, actor: Any) -> None:
    """A refund was opened (source None) or settled."""
    refund_id, target, actor = refund.refund_id, str(refund.status), str(actor)
    source = str(source) if source else None

    def tell() -> None:
        _log_move("refund", refund_id, source, target, actor)
        metrics().refunds.labels(target).inc()

    _tell(tell)


def _log_move(kind: str, key: str, source: str | None, target: str, actor: str) -> None:
    lines.write(
        transitions_log,
        "%s %s %s -> %s by %s",
        (kind, key, source or "-", target, actor),
        {
            "transaction_id" if kind == "payment" else "refund_id": key,
            "from": source,
            "to": target,
            "actor": actor,
        },
    )


def webhook_answered(provider: str, code: int) -> None:
    m = metrics()
    label = provider if provider in m.providers else "other"
    m.webhooks.labels(label, str(code)).inc()


def stream_opened() -> None:
    metrics().live_streams.inc()


def stream_closed() -> None:
    metrics().live_streams.dec()


def breaker_changed(gateway: str, open_for: float | None) -> None:
    """A worker's breaker for `gateway` opened for `open_for` seconds, or closed (None)."""
    until = time.time() + open_for if open_for else 0.0
    metrics().breaker_open_until.labels(gateway).set(until)
