"""The `railserve` console script: schema, trains, sweep, invariant check, server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

from railserve import auth, db, display
from railserve import config as config_module
from railserve.bounds import REASON
from railserve.models import TravelClass
from railserve.money import digits, format_amount, known_currency, parse_amount

TRAIN_NUMBER = re.compile(r"[A-Za-z0-9]{1,10}")


def _fail(message: str) -> None:
    print(f"railserve: {message}", file=sys.stderr)
    raise SystemExit(2)


async def _with_db(work: Callable[[], Awaitable[int | None]]) -> int:
    settings = config_module.from_env()
    display.configure(settings.locale, settings.timezone)
    auth.configure_hashing(settings.password_time_cost, settings.password_memory_cost)
    await db.init(settings.database_url)
    try:
        return (await work()) or 0
    finally:
        await db.close()


def cmd_init_db(args: argparse.Namespace) -> int:
    settings = config_module.from_env()
    asyncio.run(db.migrate(settings.database_url))
    print("database is up to date")
    return 0


def parse_departs(raw: str) -> datetime:
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        _fail(f"--departs {raw!r} is not an ISO 8601 date and time")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def validate_train(args: argparse.Namespace) -> tuple[datetime, int]:
    if not TRAIN_NUMBER.fullmatch(args.number):
        _fail("--number must be 1 to 10 letters or digits")
    for name in ("name", "origin", "destination"):
        value = getattr(args, name).strip()
        if not 0 < len(value) <= 80:
            _fail(f"--{name} must be 1 to 80 characters")
    if not 0 < args.seats <= 100_000:
        _fail("--seats must be a positive number")
    if not known_currency(args.currency):
        _fail(f"--currency {args.currency!r} is not an ISO 4217 currency code, e.g. INR or USD")
    fare = parse_amount(args.fare, args.currency)
    if fare is None or fare <= 0:
        places = ("no decimals", "one decimal", "two decimals", "three decimals")
        _fail(
            f"--fare must be a positive amount in {args.currency} with up to "
            f"{places[min(digits(args.currency), 3)]}, e.g. {format_amount(125000, args.currency)}"
        )
    return parse_departs(args.departs), fare


async def add_train(
    number: str,
    name: str,
    origin: str,
    destination: str,
    departs: datetime,
    seats: int,
    fare: int,
    travel_class: str = "3A",
    *,
    currency: str = "INR",
):
    from railserve.models import Train

    return await Train.create(
        travel_class=travel_class,
        number=number.upper(),
        name=name.strip(),
        origin=origin.strip(),
        destination=destination.strip(),
        departs_at=departs,
        total_seats=seats,
        seats_left=seats,
        fare=fare,
        currency=currency,
    )


def cmd_add_train(args: argparse.Namespace) -> int:
    departs, fare = validate_train(args)

    async def work() -> int:
        from railserve.models import Train

        if await Train.exists(number=args.number.upper()):
            _fail(f"train {args.number} already exists")
        train = await add_train(
            args.number,
            args.name,
            args.origin,
            args.destination,
            departs,
            args.seats,
            fare,
            args.travel_class,
            currency=args.currency,
        )
        print(f"added train {train.number} (id {train.id})")
        return 0

    return asyncio.run(_with_db(work))


DEMO_TRAINS = (
    ("12951", "Rajdhani Express", "Mumbai Central", "New Delhi", 1, 120, 245000, "2A"),
    ("12002", "Shatabdi Express", "New Delhi", "Bhopal", 2, 80, 125000, "CC"),
    ("12627", "Karnataka Express", "Bengaluru", "New Delhi", 3, 60, 98050, "3A"),
    ("22691", "Rajdhani Express", "Bengaluru", "Hazrat Nizamuddin", 4, 2, 310000, "1A"),
    ("12259", "Duronto Express", "Sealdah", "New Delhi", 5, 40, 189900, "3E"),
    ("16526", "Island Express", "Bengaluru", "Kanyakumari", 6, 100, 45000, "SL"),
)


def cmd_seed_demo(args: argparse.Namespace) -> int:
    async def work() -> int:
        from railserve.models import Train

        start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        added = 0
        for number, name, origin, destination, days, seats, fare, cls in DEMO_TRAINS:
            if await Train.exists(number=number):
                continue
            departs = start + timedelta(days=days, hours=6)
            await add_train(number, name, origin, destination, departs, seats, fare, cls)
            added += 1
        print(f"demo trains: {added} added, {len(DEMO_TRAINS) - added} already there")
        return 0

    return asyncio.run(_with_db(work))


@contextlib.asynccontextmanager
async def _gateways(settings) -> AsyncIterator:
    """The configured gateways, their reports handled by this process's webhook handler;
    reports still due are let finish before the command ends."""
    from railserve.payment import providers
    from railserve.payment.webhook.log import handle_logged

    holder: dict = {}

    def deliver_for(provider: str):
        async def deliver(body: bytes, signature: str) -> object:
            return await handle_logged(
                settings, holder["gateway"], body, signature, provider=provider
            )

        return deliver

    holder["gateway"] = providers.create(settings, deliver_for)
    try:
        yield holder["gateway"]
    finally:
        await holder["gateway"].aclose()


def cmd_sweep(args: argparse.Namespace) -> int:
    async def work() -> int:
        from railserve.sweep import sweep

        settings = config_module.from_env()
        async with _gateways(settings) as gateway:
            report = await sweep(settings, gateway)
        print(f"sweep: {report.summary()}")
        return 0

    return asyncio.run(_with_db(work))


def cmd_cancel_train(args: argparse.Namespace) -> int:
    reason = args.reason.strip()
    if not REASON.fits(reason):
        _fail(f"--reason must be {REASON.words} characters")

    async def work() -> int:
        from railserve.errors import NotFound
        from railserve.payment.train_cancellation import cancel_train

        settings = config_module.from_env()

        def progress(done: int, total: int) -> None:
            bar = "#" * (30 * done // max(total, 1))
            print(f"\r[{bar:<30}] {done}/{total} bookings", end="", file=sys.stderr, flush=True)

        try:
            async with _gateways(settings) as gateway:
                report = await cancel_train(
                    gateway, settings, args.number, reason, progress, args.pause
                )
        except NotFound as error:
            _fail(error.message)
        print(file=sys.stderr)
        print(report.summary())
        return 0

    return asyncio.run(_with_db(work))


def cmd_check(args: argparse.Namespace) -> int:
    async def work() -> int:
        from railserve.invariants import violations

        async with _gateways(config_module.from_env()) as gateways:
            problems = await violations(gateways)
        for problem in problems:
            print(f"VIOLATION: {problem}")
        if problems:
            return 1
        print("all invariants hold")
        return 0

    return asyncio.run(_with_db(work))


def cmd_add_operator(args: argparse.Namespace) -> int:
    async def work() -> int:
        from railserve.auth import normalise_email, register_user
        from railserve.errors import DomainError
        from railserve.models import Role, User

        email = normalise_email(args.email)
        if email is None:
            _fail("--email is not a valid e-mail address")
        if await User.filter(email=email).update(role=Role.OPERATOR):
            print(f"{email} is now an operator")
            return 0
        password = sys.stdin.readline().rstrip("\r\n")
        try:
            user = await register_user(args.name or email.split("@")[0], email, password)
        except DomainError as error:
            _fail("; ".join(error.errors.values()) or error.message)
        await User.filter(id=user.id).update(role=Role.OPERATOR)
        print(f"created operator {email}")
        return 0

    return asyncio.run(_with_db(work))


def cmd_reconcile(args: argparse.Namespace) -> int:
    async def work() -> int:
        from railserve.ops.reconciliation import differences, offline_settlements

        async with _gateways(config_module.from_env()) as gateways:
            found = await differences(gateways=gateways)
        for difference in found:
            print(f"DIFFERENCE {difference}")
        for settled in await offline_settlements():
            print(
                f"SETTLED OUTSIDE THE GATEWAY {settled.transaction_id} refund "
                f"{settled.refund_id}: {settled.amount}, reference {settled.reference}"
            )
        if found:
            return 1
        print("the gateway's ledger and the database agree")
        return 0

    return asyncio.run(_with_db(work))


def cmd_serve(args: argparse.Namespace) -> int:
    config_module.from_env()  # refuse to start on a bad configuration, before forking
    # The app is imported by module path, from the project's root (where app.py is).
    sys.path.insert(0, os.getcwd())
    with _metrics_folder():
        return _serve(args)


@contextlib.contextmanager
def _metrics_folder():
    """prometheus-client's multiprocess folder, in the environment before any worker starts
    and emptied first (PROMETHEUS_MULTIPROC_DIR when set, else a folder of this server's)."""
    import shutil
    import tempfile

    from railserve import running

    given = running.multiprocess_dir()
    path = given or tempfile.mkdtemp(prefix="railserve-metrics-")
    running.prepare_multiprocess_dir(path)
    try:
        yield
    finally:
        if not given:  # the environment as it was (a test may serve in-process)
            os.environ.pop(running.MULTIPROC_ENV, None)
            shutil.rmtree(path, ignore_errors=True)


def _serve(args: argparse.Namespace) -> int:
    if args.server == "uvicorn":
        return _serve_uvicorn(args)
    if args.server == "granian":
        return _serve_granian(args)
    from hypercorn.config import Config
    from hypercorn.run import run

    config = Config()
    config.application_path = args.app
    config.bind = [args.bind]
    config.workers = args.workers
    config.accesslog = "-" if args.access_log else None
    config.errorlog = "-"
    config.graceful_timeout = 5
    return run(config) or 0


def _serve_uvicorn(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError:
        _fail("uvicorn is not installed: pip install 'railserve[uvicorn]'")
    host, _, port = args.bind.rpartition(":")
    uvicorn.run(
        args.app,
        host=host or "127.0.0.1",
        port=int(port),
        workers=args.workers,
        access_log=args.access_log,
        timeout_graceful_shutdown=5,
        lifespan="on",
    )
    return 0


STREAMS_PER_WORKER = 10_000  # concurrent requests (live streams included) a worker takes


def _serve_granian(args: argparse.Namespace) -> int:
    try:
        from granian import Granian
        from granian.constants import Interfaces
    except ImportError:
        _fail("granian is not installed: pip install -e .")
    host, _, port = args.bind.rpartition(":")
    Granian(
        args.app,
        address=host or "127.0.0.1",
        port=int(port),
        interface=Interfaces.ASGI,
        workers=args.workers,
        log_access=args.access_log,
        workers_kill_timeout=5,  # graceful shutdown: in-flight requests get 5 s
        # Granian serves at most backlog // workers requests at once per worker (1,024 by
        # default); each open live-status stream is one, so allow thousands.
        backlog=4096,
        backpressure=STREAMS_PER_WORKER,
    ).serve()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="railserve", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("init-db", help="create or upgrade the schema").set_defaults(
        run=cmd_init_db
    )
    commands.add_parser("seed-demo", help="add a handful of demo trains").set_defaults(
        run=cmd_seed_demo
    )
    add = commands.add_parser("add-train", help="add a train")
    add.add_argument("--number", required=True)
    add.add_argument("--name", required=True)
    add.add_argument("--origin", required=True)
    add.add_argument("--destination", required=True)
    add.add_argument("--departs", required=True, help="ISO 8601; no offset means UTC")
    add.add_argument("--seats", required=True, type=int)
    add.add_argument(
        "--fare", required=True, help="major units with the currency's digits, e.g. 1250.00"
    )
    add.add_argument("--currency", default="INR", help="ISO 4217 code (default INR)")
    add.add_argument(
        "--class", dest="travel_class", default="3A", choices=[c.value for c in TravelClass]
    )
    add.set_defaults(run=cmd_add_train)
    cancel = commands.add_parser(
        "cancel-train", help="the railway cancelled a train: cancel and refund every booking"
    )
    cancel.add_argument("--number", required=True)
    cancel.add_argument("--reason", required=True)
    # Seconds between bookings: lets a test kill the command halfway.
    cancel.add_argument("--pause", type=float, default=0.0, help=argparse.SUPPRESS)
    cancel.set_defaults(run=cmd_cancel_train)
    commands.add_parser("sweep", help="expire stale attempts and holds, reconcile").set_defaults(
        run=cmd_sweep
    )
    commands.add_parser("check", help="verify the database invariants").set_defaults(run=cmd_check)
    operator = commands.add_parser(
        "add-operator", help="make an account an operator (a new one reads its password from stdin)"
    )
    operator.add_argument("--email", required=True)
    operator.add_argument("--name")
    operator.set_defaults(run=cmd_add_operator)
    commands.add_parser(
        "reconcile", help="compare the gateway's ledger with the database; exit 1 on differences"
    ).set_defaults(run=cmd_reconcile)
    serve = commands.add_parser("serve", help="run the production ASGI server")
    serve.add_argument("--bind", default="127.0.0.1:5000")
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--access-log", action="store_true")
    serve.add_argument(
        "--server",
        choices=("hypercorn", "uvicorn", "granian"),
        default=os.environ.get("RAILSERVE_SERVER", "granian"),
        help="the ASGI server: granian (measured fastest, bench/README.md), hypercorn, or "
        "uvicorn (the 'uvicorn' extra)",
    )
    serve.add_argument(
        "--app", default="app:app", help="the ASGI app to serve (the benchmarks' references)"
    )
    serve.set_defaults(run=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except config_module.ConfigError as error:
        _fail(str(error))
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
