"""Running RailServe in production: metrics, request ids, the log format, readiness.

What the people who keep RailServe up read from their own monitoring (PRODUCT.md "Running
it"). Metrics use the official prometheus-client; `railserve serve` puts its multiprocess
folder in the environment before the workers start, and a scrape sums every worker's
files. prometheus-client chooses between in-memory and multiprocess values when it is
first imported, so it is imported here only when the app is built (in a worker, after the
variable is set), never at import time of the package.

Logs go through the standard library's `logging` (see docs/operations.md for why), one
line per request and one per payment or refund transition; the request id lives in a
context variable, so every line written while a request runs carries it.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import logging
import os
import pkgutil
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import cache
from typing import Any

from quart import Blueprint, Quart, Response, current_app, request
from quart_auth import current_user
from werkzeug.exceptions import NotFound

bp = Blueprint("running", __name__)
log = logging.getLogger("railserve.request")
transitions_log = logging.getLogger("railserve.transition")

REQUEST_ID: ContextVar[str | None] = ContextVar("railserve_request_id", default=None)
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
UNMATCHED = "unmatched"  # the endpoint label of a request no route took (404, 405)
FINAL = frozenset(("success", "failed", "cancelled"))
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


# --- Metrics ----------------------------------------------------------------------------


class Metrics:
    """Every metric of one process, and cached children for the per-request labels."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.payment_attempts = Counter(
            "railserve_payment_attempts",
            "Payment attempts that reached a final state, by method, gateway and outcome.",
            ["method", "gateway", "outcome"],
        )
        self.settle_seconds = Histogram(
            "railserve_payment_settle_seconds",
            "Seconds from an attempt's start to its final state.",
            buckets=(0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300, 600, 1800),
        )
        self.refunds = Counter(
            "railserve_refunds",
            "Refunds reaching each status (pending: opened).",
            ["status"],
        )
        self.webhooks = Counter(
            "railserve_webhooks",
            "Gateway webhooks received, by provider and the code we answered.",
            ["provider", "code"],
        )
        # Each worker writes until when its breaker skips a gateway (0: closed); the scrape
        # turns the latest of them into railserve_gateway_available.
        self.breaker_open_until = Gauge(
            "railserve_gateway_breaker_open_until_seconds",
            "Unix time until which a worker's circuit breaker skips the gateway (0: closed).",
            ["gateway"],
            multiprocess_mode="livemax",
        )
        self.live_streams = Gauge(
            "railserve_live_streams",
            "Live status streams open now.",
            multiprocess_mode="livesum",
        )
        self.http_requests = Counter(
            "railserve_http_requests",
            "HTTP requests answered, by endpoint name and status code.",
            ["endpoint", "code"],
        )
        self.http_seconds = Histogram(
            "railserve_http_request_seconds",
            "Seconds to answer a request (to its headers), by endpoint name.",
            ["endpoint"],
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.providers: frozenset[str] = frozenset()
        # (endpoint, code) -> (counter child, histogram child): `labels()` takes a lock
        # and builds a key tuple each call; the status poll must not pay that.
        self._request_children: dict[tuple[str, int], tuple[Any, Any]] = {}

    def request_children(self, endpoint: str, code: int) -> tuple[Any, Any]:
        children = self._request_children.get((endpoint, code))
        if children is None:
            children = (
                self.http_requests.labels(endpoint, str(code)),
                self.http_seconds.labels(endpoint),
            )
            self._request_children[(endpoint, code)] = children
        return children


_metrics: Metrics | None = None


def metrics() -> Metrics:
    global _metrics
    if _metrics is None:
        _metrics = Metrics()
    return _metrics


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def _multiprocess_values() -> str | None:
    """The folder this process's metrics are written to, if they are (prometheus-client
    chose when it was imported: the variable set later changes nothing)."""
    from prometheus_client import values

    path = multiprocess_dir()
    return path if path and values.ValueClass is not values.MutexValue else None


def prepare_multiprocess_dir(path: str) -> None:
    """Make the folder and empty it (in the process that spawns the workers, before them)."""
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.remove(os.path.join(path, name))
    os.environ[MULTIPROC_ENV] = path


def worker_stopped() -> None:
    """A worker leaving: its live gauges (open streams, breakers) stop counting."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())


# --- Hooks the money path calls: one line each -------------------------------------------


# Moves made inside a transaction are told once it commits (db.atomic runs them), so a
# rolled-back move is neither counted nor logged; outside one they are told at once.
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
        m = _metrics or metrics()
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
        (_metrics or metrics()).refunds.labels(target).inc()

    _tell(tell)


def _log_move(kind: str, key: str, source: str | None, target: str, actor: str) -> None:
    transitions_log.info(
        "%s %s %s -> %s by %s",
        kind,
        key,
        source or "-",
        target,
        actor,
        extra={
            "fields": {
                "transaction_id" if kind == "payment" else "refund_id": key,
                "from": source,
                "to": target,
                "actor": actor,
            }
        },
    )


def webhook_answered(provider: str, code: int) -> None:
    m = _metrics or metrics()
    label = provider if provider in m.providers else "other"
    m.webhooks.labels(label, str(code)).inc()


def stream_opened() -> None:
    (_metrics or metrics()).live_streams.inc()


def stream_closed() -> None:
    (_metrics or metrics()).live_streams.dec()


def breaker_changed(gateway: str, open_for: float | None) -> None:
    """A worker's breaker for `gateway` opened for `open_for` seconds, or closed (None)."""
    until = time.time() + open_for if open_for else 0.0
    (_metrics or metrics()).breaker_open_until.labels(gateway).set(until)


# --- Request ids and the request line ----------------------------------------------------


def request_id() -> str | None:
    return REQUEST_ID.get()


def with_request_id(detail: str, limit: int = 300) -> str:
    """An audit row's detail with the id of the request that writes it (when there is one),
    so that an operator can go from the audit trail to the request's log lines."""
    rid = REQUEST_ID.get()
    if rid is None or not isinstance(detail, str) or rid in detail:
        return detail
    suffix = f" [request {rid}]"
    return detail[: limit - len(suffix)] + suffix


# Made ids: this process's random prefix and a counter, unique across workers and hosts
# without a system call per request (ids are for finding lines, not secrets).
_ID_PREFIX = os.urandom(6).hex()
_id_counter = itertools.count(1)
# When the request began (perf_counter), beside its id: one context variable each, no `g`.
_STARTED: ContextVar[float] = ContextVar("railserve_request_started", default=0.0)


async def begin_request() -> None:
    """Keep the client's X-Request-ID when it is well formed, else make one."""
    sent = request.headers.get("X-Request-ID")
    if sent is None or not REQUEST_ID_PATTERN.fullmatch(sent):
        sent = f"{_ID_PREFIX}{next(_id_counter):08x}"
    REQUEST_ID.set(sent)
    _STARTED.set(time.perf_counter())


async def end_request(response: Response) -> Response:
    """Echo the request id, count the answer, and write the request's line."""
    elapsed = time.perf_counter() - _STARTED.get()
    response.headers["X-Request-ID"] = REQUEST_ID.get() or ""
    current = request._get_current_object()  # one proxy lookup, not one per attribute
    rule = current.url_rule
    endpoint = rule.endpoint if rule is not None else UNMATCHED
    code = response.status_code
    counter, histogram = (_metrics or metrics()).request_children(endpoint, code)
    counter.inc()
    histogram.observe(elapsed)
    if log.isEnabledFor(logging.INFO):
        user = current_user.auth_id
        method = current.method
        fields = {
            "method": method,
            "endpoint": endpoint,
            "status": code,
            "duration_ms": round(elapsed * 1000, 2),
            "user_id": int(user) if user is not None else None,
        }
        # Made by hand: `log.info` would walk the stack to find its caller, the larger part
        # of a line's cost, for a place that is always this one. Every part of the message
        # is a route name or a number: nothing to scrub.
        record = log.makeRecord(
            log.name,
            logging.INFO,
            __file__,
            0,
            "%s %s %s %.1fms",
            (method, endpoint, code, elapsed * 1000),
            None,
            extra={"fields": fields, "scrubbed": True},
        )
        log.handle(record)
    return response


# --- Log format ---------------------------------------------------------------------------

# Anything that looks like a card number (13-19 digits, spaces or hyphens between) is cut
# from free text before it is written: no form value is logged, and this is the net under it.
CARD_LIKE = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")


def _scrub(text: str) -> str:
    return CARD_LIKE.sub("[redacted]", text) if any(c.isdigit() for c in text) else text


class _Formatter(logging.Formatter):
    def stamp(self, record: logging.LogRecord) -> str:
        seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{seconds}.{int(record.msecs):03d}Z"

    def parts(self, record: logging.LogRecord) -> tuple[str, dict, str | None]:
        message = record.getMessage()
        if not getattr(record, "scrubbed", False):
            message = _scrub(message)
        fields = dict(getattr(record, "fields", None) or {})
        rid = REQUEST_ID.get()
        if rid is not None:
            fields["request_id"] = rid
        error = None
        if record.exc_info:
            error = _scrub(self.formatException(record.exc_info))
        return message, fields, error


_JSON = json.JSONEncoder(default=str, ensure_ascii=False)  # made once, not per line


class JsonFormatter(_Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        message, fields, error = self.parts(record)
        line = {
            "time": self.stamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": message,
            **fields,
        }
        if error:
            line["error"] = error
        return _JSON.encode(line)


class TextFormatter(_Formatter):
    """A plain line: time, level, logger, message, then key=value pairs."""

    def format(self, record: logging.LogRecord) -> str:
        message, fields, error = self.parts(record)
        pairs = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None and k != "method")
        line = f"{self.stamp(record)} {record.levelname} {record.name}: {message}"
        if pairs:
            line += " " + pairs
        if error:
            line += "\n" + error
        return line


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (a test's capture replaces it)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass

    def flush(self) -> None:
        # A line-buffered stream has written the line already: no second call per line.
        stream = sys.stderr
        if not getattr(stream, "line_buffering", False):
            stream.flush()


def configure_logging(log_format: str) -> None:
    """One handler on the root logger in the chosen format; RailServe's own lines at INFO."""
    # Neither format writes thread or process names: records need not look them up (the
    # logging HOWTO's "Optimization"); the pid stays.
    logging.logThreads = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    handler = next((h for h in root.handlers if isinstance(h, _StderrHandler)), None)
    if handler is None:
        handler = _StderrHandler()
        root.addHandler(handler)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    railserve = logging.getLogger("railserve")
    if railserve.level == logging.NOTSET or railserve.level > logging.INFO:
        railserve.setLevel(logging.INFO)


# --- Readiness ----------------------------------------------------------------------------


@cache
def migrations_on_disk() -> frozenset[str]:
    from railserve import migrations

    return frozenset(
        name for _, name, is_pkg in pkgutil.iter_modules(migrations.__path__) if name[0] != "_"
    )


async def _applied_migrations() -> set[str]:
    from tortoise import connections

    from railserve.db import APP_LABEL

    client = connections.get("default")
    await client.execute_query("SELECT 1")
    try:
        _, rows = await client.execute_query(
            f'SELECT "name" FROM "tortoise_migrations" WHERE "app" = \'{APP_LABEL}\''
        )
    except Exception as error:
        raise _NoMigrations from error
    return {row["name"] for row in rows}


class _NoMigrations(Exception):
    pass


READY_TIMEOUT = 5.0


async def readiness() -> str | None:
    """None when the database answers and every migration is applied; else why not."""
    from railserve import db

    try:
        check = _applied_migrations()
        # A PostgreSQL that does not answer could hold a connect for minutes; SQLite's
        # calls are never cancelled (that can wedge its connection).
        applied = await (check if db.sqlite_in_use() else asyncio.wait_for(check, READY_TIMEOUT))
    except _NoMigrations:
        return "no migrations applied: run `railserve init-db`"
    except Exception as error:
        logging.getLogger("railserve.readiness").warning("database check failed: %r", error)
        return f"database unreachable ({type(error).__name__})"
    missing = sorted(migrations_on_disk() - applied)
    if missing:
        return f"migrations not applied: {', '.join(missing)}: run `railserve init-db`"
    return None


# --- Views ----------------------------------------------------------------------------------


@bp.get("/healthz")
async def healthz() -> Response:
    """Answer a load balancer: the process is up."""
    return Response("ok", mimetype="text/plain")


@bp.get("/readyz")
async def readyz() -> Response:
    """Answer 200 when the database answers and its migrations are current, else 503."""
    reason = await readiness()
    if reason is None:
        return Response("ready", mimetype="text/plain")
    return Response(f"not ready: {reason}", status=503, mimetype="text/plain")


@bp.get("/metrics")
async def scrape() -> Response:
    """Serve the metrics of every worker to operators and the metrics token; 404 to others."""
    if not await _may_scrape():
        raise NotFound()
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Scrape(await _database_counts()))
    body = generate_latest(registry)
    return Response(body, content_type=CONTENT_TYPE_LATEST)


async def _may_scrape() -> bool:
    token = current_app.config["RAILSERVE"].metrics_token
    sent = request.headers.get("Authorization", "")
    if (
        token
        and sent.startswith("Bearer ")
        and hmac.compare_digest(sent[7:].strip().encode(), token.encode())
    ):
        return True
    if not await current_user.is_authenticated:
        return False
    from railserve.models import Role, User

    return await User.exists(id=int(current_user.auth_id), role=Role.OPERATOR)


async def _database_counts() -> dict[str, float]:
    """Counts that live in the database, read by the scraping worker alone."""
    from railserve.models import Mail
    from railserve.payment.models import Refund, RefundStatus

    settings = current_app.config["RAILSERVE"]
    refunds = await Refund.filter(status=RefundStatus.PENDING).count()
    # Without SMTP the outbox is only shown to passengers: nothing waits to be sent.
    mails = await Mail.filter(delivered_at=None).count() if settings.smtp_url else 0
    return {"refunds_pending": refunds, "mail_outbox_pending": mails}


class _Scrape:
    """One scrape: every worker's metrics, gateway availability, and the database's counts."""

    def __init__(self, counts: dict[str, float]) -> None:
        self.counts = counts

    def collect(self):
        from prometheus_client import REGISTRY
        from prometheus_client.core import GaugeMetricFamily
        from prometheus_client.multiprocess import MultiProcessCollector

        path = _multiprocess_values()
        families = list(MultiProcessCollector(None, path).collect() if path else REGISTRY.collect())
        now = time.time()
        m = _metrics or metrics()
        available = GaugeMetricFamily(
            "railserve_gateway_available",
            "1 when the gateway takes attempts, 0 while a circuit breaker skips it.",
            labels=["gateway"],
        )
        open_until = {name: 0.0 for name in m.providers}
        for family in families:
            if family.name == "railserve_gateway_breaker_open_until_seconds":
                for sample in family.samples:
                    gateway = sample.labels.get("gateway", "")
                    open_until[gateway] = max(open_until.get(gateway, 0.0), sample.value)
        for gateway, until in sorted(open_until.items()):
            available.add_metric([gateway], 0.0 if until > now else 1.0)
        yield from families
        yield available
        yield GaugeMetricFamily(
            "railserve_refunds_pending",
            "Refunds waiting for the gateway's answer.",
            value=self.counts["refunds_pending"],
        )
        yield GaugeMetricFamily(
            "railserve_mail_outbox_pending",
            "Mails waiting to be delivered by SMTP.",
            value=self.counts["mail_outbox_pending"],
        )


# --- Wiring ---------------------------------------------------------------------------------


def init_app(app: Quart, settings: Any) -> None:
    """Metrics, request ids and the request line, the log format, and the three views."""
    configure_logging(settings.log_lines)
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
        worker_stopped()
