"""The web app: `create_app` builds it (settings, extensions, blueprints, error mapping,
lifecycle); `railserve.create_app` is this one, imported on first use."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from functools import cache, lru_cache
from pathlib import Path

from quart import Quart, Response, make_response, redirect, request, url_for
from quart_auth import Unauthorized, current_user
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from railserve import auth, db, display, limits, running, security
from railserve import config as config_module
from railserve.config import Settings
from railserve.display import format_clock, format_due, format_money, format_when
from railserve.errors import DomainError
from railserve.htmx import is_htmx, wants_event_stream, wants_json
from railserve.money import format_amount
from railserve.payment.refunds import expected_time
from railserve.prepared import PreparedRead
from railserve.templating import SyncEnvironment, check_synchronous, render
from railserve.vocabulary import install as install_vocabulary

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("railserve")


MAX_DB_ID = 2**31 - 1


class DbIdConverter(IntegerConverter):
    """A database id: a positive integer that fits the column, else the route 404s."""

    # ASCII digits, no leading zero: `\d` would also take "١" (Arabic-Indic one) as 1.
    regex = r"[1-9][0-9]{0,9}"

    def __init__(self, map, *args, **kwargs) -> None:
        super().__init__(map, min=1)

    def to_python(self, value: str) -> int:
        # Werkzeug notes a rule's methods (for a 405) before converting its values, so a
        # refused conversion on one of two rules of a path (GET and POST of
        # /bookings/<id>/cancel) answered 405. Past the column's range the id becomes 0,
        # which no row has: the view answers 404 as for any unknown id.
        number = super().to_python(value)
        return number if number <= MAX_DB_ID else 0


class RailServe(Quart):
    """Quart, remembering which hooks are coroutine functions.

    Quart asks `inspect` again for every hook, context processor and view on every request
    (`ensure_async`, its documented override point): a few per cent of the status poll.
    Its Jinja environment is synchronous (railserve/templating.py).
    """

    jinja_environment = SyncEnvironment

    def ensure_async(self, func: Callable) -> Callable:
        if _is_coroutine_function(func):
            return func
        return self.sync_to_async(func)


# The same test Quart makes on Python 3.11 (asyncio's, which also knows marked functions).
@lru_cache(maxsize=1024)
def _cached_is_coroutine_function(func: Callable) -> bool:
    return asyncio.iscoroutinefunction(func)


def _is_coroutine_function(func: Callable) -> bool:
    try:
        return _cached_is_coroutine_function(func)
    except TypeError:  # an unhashable callable
        return asyncio.iscoroutinefunction(func)


def create_app(settings: Settings | None = None) -> Quart:
    settings = settings or config_module.from_env()
    app = RailServe(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
        instance_path=str(config_module.INSTANCE_DIR),
    )
    development = not settings.production
    display.configure(settings.locale, settings.timezone)
    auth.configure_hashing(settings.password_time_cost, settings.password_memory_cost)
    app.config.update(
        RAILSERVE=settings,
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=not development,
        SESSION_COOKIE_NAME="railserve_session",
        QUART_AUTH_COOKIE_SECURE=not development,
        QUART_AUTH_COOKIE_SAMESITE="Lax",
        QUART_AUTH_COOKIE_NAME="railserve_auth",
        QUART_AUTH_DURATION=14 * 24 * 3600,
        MAX_CONTENT_LENGTH=64 * 1024,
        SEND_FILE_MAX_AGE_DEFAULT=3600,
    )
    app.url_map.converters["dbid"] = DbIdConverter
    # `/status/%2F0` is a bad id (404), not a path to merge into `/status/0` (308).
    app.url_map.merge_slashes = False
    security.RememberingAuth(app)
    running.init_app(app, settings)
    limits.init_app(app, enabled=settings.rate_limits, redis_url=settings.redis_url)
    security.init_app(app)
    _register_templates(app)
    _register_blueprints(app)
    _register_errors(app)
    _register_lifecycle(app, settings)
    _no_threads_for_sync_context_processors(app)
    check_synchronous(app.jinja_env)
    return app


def _no_threads_for_sync_context_processors(app: Quart) -> None:
    """Quart runs a synchronous context processor (quart-auth's) in a worker thread on every
    render: a thread hop per page or partial. They do no I/O, so call them on the loop."""
    for processors in app.template_context_processors.values():
        for index, processor in enumerate(processors):
            if not inspect.iscoroutinefunction(processor):

                async def on_loop(processor=processor) -> dict:
                    return processor()

                processors[index] = on_loop


def _register_blueprints(app: Quart) -> None:
    from railserve.auth import bp as auth_bp
    from railserve.booking import bp as booking_bp
    from railserve.help import bp as help_bp
    from railserve.ops import ops_bp
    from railserve.payment import payment_bp

    app.register_blueprint(auth_bp)
    app.register_blueprint(booking_bp)
    app.register_blueprint(payment_bp)
    app.register_blueprint(help_bp)
    app.register_blueprint(ops_bp)

    @app.get("/favicon.ico")
    async def favicon() -> Response:
        """Serve the icon browsers ask for."""
        return await app.send_static_file("favicon.svg")


def _register_templates(app: Quart) -> None:
    app.jinja_env.filters["amount"] = format_amount
    app.jinja_env.filters["money"] = format_money
    app.jinja_env.filters["when"] = format_when
    app.jinja_env.filters["due"] = format_due
    app.jinja_env.filters["clock"] = format_clock
    app.jinja_env.globals["refund_eta"] = expected_time
    install_vocabulary(app.jinja_env)

    @app.context_processor
    async def layout() -> dict:
        settings: Settings = app.config["RAILSERVE"]
        signed_in = await current_user.is_authenticated
        unread, operator = 0, False
        if signed_in and not is_htmx() and not wants_event_stream():
            from railserve.models import Role

            # One query for the badge and the operator's link: every full page pays it.
            rows = await _badge_read().rows(False, int(current_user.auth_id))
            if rows:
                unread, operator = rows[0]["unread"], rows[0]["role"] == Role.OPERATOR
        return {
            "signed_in": signed_in,
            "unread_count": unread,
            "operator": operator,
            "settings": settings,
        }


@cache
def _badge_read() -> PreparedRead:
    """The passenger's role and unread notifications, its SQL built once (railserve/prepared.py).

    `read` is a value of the query (always False) because the SQL takes it as a parameter.
    """
    from tortoise.expressions import Q
    from tortoise.functions import Count

    from railserve.models import User

    return PreparedRead(
        User,
        lambda read, user_id: (
            User.filter(id=user_id)
            .annotate(unread=Count("notifications", _filter=Q(notifications__read=read)))
            .values("role", "unread")
        ),
    )


def _register_errors(app: Quart) -> None:
    async def error_response(status: int, message: str, headers: dict | None = None) -> Response:
        if wants_json() or request.endpoint in ("payment.webhook", "payment.provider_webhook"):
            response = await make_response({"error": message}, status)
        else:
            template = "errors/_message.html" if is_htmx() else "errors/page.html"
            body = await render(template, status=status, message=message)
            response = await make_response(body, status)
        for name, value in (headers or {}).items():
            response.headers[name] = value
        return response

    @app.errorhandler(DomainError)
    async def domain_error(error: DomainError) -> Response:
        return await error_response(error.status, error.message)

    @app.errorhandler(Unauthorized)
    async def login_needed(error: Unauthorized) -> Response:
        login = url_for("auth.login", next=request.full_path.rstrip("?"))
        if is_htmx():
            response = await error_response(401, "Please log in.")
            response.headers["HX-Redirect"] = login
            return response
        if wants_json():
            return await error_response(401, "Login required.")
        return redirect(login, 303)

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        headers = {k: v for k, v in error.get_headers() if k.lower() == "retry-after"}
        message = {
            404: "Not found.",
            405: "That method is not allowed here.",
            413: "That request is too large.",
            429: "Too many attempts. Please wait a moment and try again.",
        }.get(status, error.description or "Request refused.")
        if status == 403:
            message = error.description or "Forbidden."
        return await error_response(status, message, headers)

    @app.errorhandler(Exception)
    async def unexpected(error: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return await error_response(500, "Something went wrong on our side. Please try again.")


def _register_lifecycle(app: Quart, settings: Settings) -> None:
    from railserve.payment import providers
    from railserve.payment.live.hub import Hub
    from railserve.payment.live.stream import HEARTBEAT
    from railserve.payment.webhook.log import handle_logged

    # One hub per worker: the event streams' subscriptions and the task that learns of
    # other workers' changes (LISTEN on PostgreSQL, a poller on SQLite).
    app.extensions["railserve.live"] = Hub()
    app.config.setdefault("LIVE_HEARTBEAT", HEARTBEAT)

    def deliver_for(provider: str):
        async def deliver(body: bytes, signature: str) -> object:
            try:
                return await handle_logged(
                    settings,
                    app.extensions["railserve.gateways"],
                    body,
                    signature,
                    provider=provider,
                )
            except DomainError as error:  # a refusal is an answer, as it would be over HTTP
                return f"{error.status} {error.message}"

        return deliver

    @app.before_serving
    async def start() -> None:
        await db.init(settings.database_url)
        gateways = providers.create(settings, deliver_for)
        # "railserve.gateway" is the same router: as one gateway it asks each attempt's own.
        app.extensions["railserve.gateways"] = app.extensions["railserve.gateway"] = gateways
        await app.extensions["railserve.live"].start(db.normalise_url(settings.database_url))

    @app.while_serving
    async def sweeper():
        from railserve.sweep import sweep

        async def loop() -> None:
            while True:
                try:
                    await sweep(settings, app.extensions["railserve.gateway"])
                except Exception:
                    log.exception("sweep failed")
                try:
                    await asyncio.wait_for(app.shutdown_event.wait(), settings.sweep_interval)
                    return
                except TimeoutError:
                    continue

        task = asyncio.create_task(loop()) if settings.sweep_interval > 0 else None
        yield
        if task:
            task.cancel()

    @app.after_serving
    async def stop() -> None:
        await app.extensions["railserve.live"].stop()
        # Close the gateway before forgetting it: a report finishing during aclose() still
        # needs to find it.
        gateway = app.extensions.get("railserve.gateway")
        if gateway is not None:
            await gateway.aclose()
        app.extensions.pop("railserve.gateway", None)
        app.extensions.pop("railserve.gateways", None)
        await db.close()
