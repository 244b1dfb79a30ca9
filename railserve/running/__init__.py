"""Running RailServe in production: metrics, request ids, the log format, readiness.

What the people who keep RailServe up read from their own monitoring (PRODUCT.md "Running
it"). One module each: `metrics` (prometheus-client, one folder of files per server that a
scrape sums), `moves` (the one-line hooks the money path calls), `request_hooks` (request ids,
and each request's count, time and line), `logs` (the JSON or text line, written off the
event loop), `readiness` (/healthz, /readyz, /metrics). Callers import from here.
"""

from __future__ import annotations

from typing import Any

from quart import Quart

from railserve.running.logs import JsonFormatter, TextFormatter, configure_logging, flush_logs
from railserve.running.metrics import (
    MULTIPROC_ENV,
    Metrics,
    forget_dead_workers,
    metrics,
    multiprocess_dir,
    prepare_multiprocess_dir,
    worker_stopped,
)
from railserve.running.moves import (
    breaker_changed,
    payment_moved,
    refund_moved,
    stream_closed,
    stream_opened,
    told_after_commit,
    webhook_answered,
)
from railserve.running.readiness import bp, readiness
from railserve.running.request_hooks import (
    REQUEST_ID,
    begin_request,
    end_request,
    request_id,
    with_request_id,
)

__all__ = [
    "MULTIPROC_ENV",
    "REQUEST_ID",
    "JsonFormatter",
    "Metrics",
    "TextFormatter",
    "begin_request",
    "bp",
    "breaker_changed",
    "configure_logging",
    "end_request",
    "flush_logs",
    "forget_dead_workers",
    "init_app",
    "metrics",
    "multiprocess_dir",
    "payment_moved",
    "prepare_multiprocess_dir",
    "readiness",
    "refund_moved",
    "request_id",
    "stream_closed",
    "stream_opened",
    "told_after_commit",
    "webhook_answered",
    "with_request_id",
    "worker_stopped",
]


def init_app(app: Quart, settings: Any) -> None:
    """Metrics, request ids and the request line, the log format, and the three views."""
    from railserve.running import request_hooks

    configure_logging(settings.log_lines)
    request_hooks.auth_attribute = app.config.get("QUART_AUTH_ATTRIBUTE_NAME", "_quart_auth_user")
    m = metrics()
    m.providers = frozenset((*settings.gateway_names, "simulated"))
    for name in settings.gateway_names:
        m.breaker_open_until.labels(name).set(0.0)
    # First of the before-request hooks: a refusal by any later one still has its id.
    app.before_request_funcs.setdefault(None, []).insert(0, begin_request)
    app.after_request(end_request)
    app.register_blueprint(bp)

    @app.after_serving
    async def stopped() -> None:
        flush_logs()
        worker_stopped()
