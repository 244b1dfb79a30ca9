"""Readiness, and the three views operators and load balancers ask: /healthz, /readyz,
/metrics (every worker's metrics, to operators and the metrics token only)."""

from __future__ import annotations

import asyncio
import hmac
import logging
import pkgutil
from functools import cache

from quart import Blueprint, Response, current_app, request
from quart_auth import current_user
from werkzeug.exceptions import NotFound

from railserve.running.metrics import Scrape

bp = Blueprint("running", __name__)
READY_TIMEOUT = 5.0


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
    scrape = Scrape()  # the workers' metrics first, then the database's counts (Scrape)
    scrape.counts = await _database_counts()
    registry.register(scrape)
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
