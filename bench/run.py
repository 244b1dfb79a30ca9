"""The benchmark suite: the payment path beside its references, in one run, as one table.

    .venv/bin/python bench/run.py                  # SQLite and PostgreSQL, 3 rounds of 10 s
    .venv/bin/python bench/run.py --seconds 2 --rounds 1 --databases sqlite   # smoke run

For each database it seeds a fresh one (10,000 users, each with a paid booking, its
payment and audit event, plus a pool of unpaid bookings for the posts), then starts,
each with one worker pinned to core 0 (`taskset -c 0`) and all at once:
the app (`railserve serve`), the Quart references (`railserve serve --app
bench.reference:app`, same server, same flags) and the Flask + SQLAlchemy + gunicorn peer.
Load comes from core 1: `wrk` for GETs (32 connections), bench/post_driver.py for posts.
Rounds interleave the app and its references, so a noisy neighbour hurts both alike;
the table shows medians of the rounds and the app / reference ratios.

Then the live-push benchmark, bench/push.py, for each database and each `--push` count of
streams (1,000 and 5,000 by default) on one worker, summed up in one more table:
commit-to-event latency while payments settle at a steady rate, the worker's CPU idle and
under that rate, and what the same watchers would cost polling once a second.

Then the Tatkal rush on PostgreSQL (bench/rush.py; `--rush` runs it alone, `--no-rush`
skips it), and last, each of issue 19's targets with this run's ratio: met or not.

Installs what it needs: the `bench` extra into this venv, and Debian's `wrk` with
apt-get when it is missing (it says so).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SECRET = "bench-secret-key-" + "x" * 32
CARD = {
    "method": "credit_card",
    "card_number": "4242424242424242",
    "card_expiry": "12/39",
    "card_cvv": "123",
    "card_name": "Bench Passenger",
}
USERS = 10_000
FARE = 125000


# --- set-up -----------------------------------------------------------------------------


def ensure_tools() -> None:
    try:
        import flask_sqlalchemy  # noqa: F401
        import granian  # noqa: F401
        import gunicorn  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        print("installing the bench extra into this venv: pip install -e '.[bench]'")
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "-e", f"{ROOT}[bench]"], check=True
        )
    if shutil.which("wrk") is None:
        print("wrk is missing: installing Debian's package (apt-get install -y wrk)")
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def pg_execute(base: str, statement: str) -> None:
    import asyncpg

    parts = urlsplit(base)
    conn = await asyncpg.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password,
        database="postgres",
    )
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def new_database(kind: str, workdir: Path) -> tuple[str, str | None]:
    """(url, name of a throwaway PostgreSQL database to drop afterwards)."""
    if kind == "sqlite":
        return f"sqlite://{workdir / 'bench.sqlite3'}", None
    name = f"rs_bench_{uuid.uuid4().hex[:8]}"
    asyncio.run(pg_execute(kind, f'CREATE DATABASE "{name}"'))
    parts = urlsplit(kind.replace("postgresql://", "postgres://", 1))
    return urlunsplit(parts._replace(path="/" + name)), name


@dataclass
class Seed:
    pending_txn: str = ""
    final_txn: str = ""
    pay_booking: int = 0
    app_pool: list[tuple[int, int]] = field(default_factory=list)  # (booking, user)
    ref_pool: list[tuple[int, int]] = field(default_factory=list)


async def seed(url: str, pool: int) -> Seed:
    """10,000 users with a paid booking each, plus unpaid bookings for the posts."""
    from argon2 import PasswordHasher

    from railserve import db
    from railserve.models import Booking, BookingStatus, Train, User
    from railserve.payment.models import Actor, Payment, PaymentEvent, PaymentStatus

    await db.migrate(url)
    await db.init(url)
    try:
        now = datetime.now(UTC)
        train = await Train.create(
            number="BENCH1",
            name="Bench Express",
            origin="Mumbai",
            destination="Pune",
            departs_at=now + timedelta(days=30),
            total_seats=10_000_000,
            seats_left=10_000_000,
            fare=FARE,
        )
        password = PasswordHasher().hash("bench-password")
        await User.bulk_create(
            [
                User(name=f"Bench {i}", email=f"bench{i}@example.com", password_hash=password)
                for i in range(1, USERS + 1)
            ],
            batch_size=2000,
        )
        first_user = (await User.get(email="bench1@example.com")).id
        users = list(range(first_user, first_user + USERS))
        seq = iter(range(1, 10**8))

        def booking(user_id: int, status: BookingStatus) -> Booking:
            return Booking(
                pnr=f"B{next(seq):09d}",
                user_id=user_id,
                train_id=train.id,
                passengers=["Bench Passenger"],
                passenger_count=1,
                amount=FARE,
                status=status,
                paid_at=now if status == BookingStatus.CONFIRMED else None,
            )

        paid = [booking(u, BookingStatus.CONFIRMED) for u in users]
        unpaid = [booking(users[0], BookingStatus.PENDING_PAYMENT) for _ in range(2)]
        app_pool = [booking(users[i % USERS], BookingStatus.PENDING_PAYMENT) for i in range(pool)]
        ref_pool = [booking(users[i % USERS], BookingStatus.PENDING_PAYMENT) for i in range(pool)]
        await Booking.bulk_create(paid + unpaid + app_pool + ref_pool, batch_size=2000)
        ids = {
            pnr: (bid, uid)
            for pnr, bid, uid in await Booking.all().values_list("pnr", "id", "user_id")
        }

        def resolve(rows: list[Booking]) -> list[tuple[int, int]]:
            return [ids[b.pnr] for b in rows]

        paid_ids = resolve(paid)
        payments = [
            Payment(
                transaction_id=f"TXNBENCHPAID{n:07d}",
                booking_id=bid,
                user_id=uid,
                method="credit_card",
                amount=FARE,
                currency="INR",
                status=PaymentStatus.SUCCESS,
                instrument="•••• 4242",
                idempotency_key=f"bench-paid-{n}",
                success_lock=bid,
                completed_at=now,
            )
            for n, (bid, uid) in enumerate(paid_ids)
        ]
        pending_booking = resolve(unpaid)[0][0]
        payments.append(
            Payment(
                transaction_id="TXNBENCHPENDING0000",
                booking_id=pending_booking,
                user_id=users[0],
                method="credit_card",
                amount=FARE,
                currency="INR",
                instrument="•••• 4242",
                idempotency_key="bench-pending",
                pending_lock=pending_booking,
            )
        )
        await Payment.bulk_create(payments, batch_size=2000)
        pids = dict(await Payment.all().values_list("transaction_id", "id"))
        await PaymentEvent.bulk_create(
            [
                PaymentEvent(
                    payment_id=pids[p.transaction_id],
                    from_status=PaymentStatus.PENDING if p.completed_at else None,
                    to_status=p.status,
                    event="succeed" if p.completed_at else "start",
                    actor=Actor.GATEWAY if p.completed_at else Actor.USER,
                )
                for p in payments
            ],
            batch_size=2000,
        )
        return Seed(
            pending_txn="TXNBENCHPENDING0000",
            final_txn="TXNBENCHPAID0000000",
            pay_booking=resolve(unpaid)[1][0],
            app_pool=resolve(app_pool),
            ref_pool=resolve(ref_pool),
        )
    finally:
        await db.close()


# --- servers ----------------------------------------------------------------------------


class Server:
    """One server process group, pinned to core 0 (or to `cores`)."""

    def __init__(
        self,
        label: str,
        command: list[str],
        env: dict[str, str],
        port: int,
        cwd: Path | None = None,
        cores: str = "0",
    ) -> None:
        self.label, self.command, self.env, self.port = label, command, env, port
        self.cores = cores
        self.cwd = cwd or ROOT
        self.url = f"http://127.0.0.1:{port}"
        self.log = Path(tempfile.gettempdir()) / f"railserve-bench-{label}-{port}.log"
        self.process: subprocess.Popen | None = None
        self.peak_rss_mib = 0.0

    def start(self, probe: str) -> Server:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                ["taskset", "-c", self.cores, *self.command],
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.label} exited: {self.log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(self.url + probe, timeout=2)
                return self
            except urllib.error.HTTPError:
                return self  # it answers
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        raise RuntimeError(f"{self.label} did not start: {self.log.read_text()[-3000:]}")

    def pids(self) -> list[int]:
        if not self.process:
            return []
        found = []
        for status in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = status.read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == self.process.pid:  # process group id
                    found.append(int(status.parent.name))
        return found

    def cpu_seconds(self) -> float:
        """User and system CPU of the group's processes so far (the worker's, mostly)."""
        ticks = 0
        for pid in self.pids():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                ticks += int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / os.sysconf("SC_CLK_TCK")

    def sample_rss(self) -> None:
        """The peak resident set (VmHWM) of the largest process: the worker."""
        for pid in self.pids():
            with contextlib.suppress(OSError):
                text = Path(f"/proc/{pid}/status").read_text()
                match = re.search(r"VmHWM:\s+(\d+) kB", text)
                if match:
                    self.peak_rss_mib = max(self.peak_rss_mib, int(match.group(1)) / 1024)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.sample_rss()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.process and self.pids():  # a worker left behind
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)


def cookies_for(user_ids: set[int]) -> dict[int, tuple[str, str]]:
    """(Cookie header, CSRF token) per user, signed as the app signs them."""
    from railserve import create_app
    from railserve.config import Settings

    app = create_app(
        Settings(database_url="sqlite://:memory:", secret_key=SECRET, webhook_secret=SECRET)
    )
    from quart_auth import QuartAuth

    auth = next(e for e in app.extensions["QUART_AUTH"] if isinstance(e, QuartAuth))
    session = app.session_interface.get_signing_serializer(app)
    out = {}
    for user_id in user_ids:
        token = secrets.token_urlsafe(32)
        cookie = (
            f"railserve_auth={auth.dump_token(str(user_id), app)}; "
            f"railserve_session={session.dumps({'csrf_token': token})}"
        )
        out[user_id] = (cookie, token)
    return out


# --- load -------------------------------------------------------------------------------


def parse_ms(value: str) -> float:
    number = float(re.match(r"[\d.]+", value).group(0))
    if value.endswith("us"):
        return number / 1000
    if value.endswith("ms"):
        return number
    return number * 1000  # seconds


def wrk(url: str, headers: dict[str, str], seconds: float, connections: int) -> dict:
    command = ["taskset", "-c", "1", "wrk", "-t", "1", "-c", str(connections)]
    command += ["-d", f"{max(1, round(seconds))}s", "--latency", "--timeout", "10s"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    if not re.search(r"50%\s+\d", out):
        raise RuntimeError(f"wrk {url} gave no latencies:\n{out}")
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    errors = int(non2xx.group(1)) if non2xx else 0
    # A server that closes each connection (gunicorn's sync worker) shows read "errors"
    # that are only the close; count connect and timeout failures only.
    if sockets:
        errors += int(sockets.group(1)) + int(sockets.group(4))
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": parse_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),
        "p99_ms": parse_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),
        "errors": errors,
    }


def drive_posts(
    port: int,
    items: list[dict],
    concurrency: int,
    seconds: float,
    *,
    pinned: bool = True,
    expect: int = 303,
) -> dict:
    """bench/post_driver.py with `items` over `concurrency` connections for `seconds` (all
    of them, if there are fewer), on core 1 when `pinned` (the tables; the rush is not)."""
    with tempfile.TemporaryDirectory() as tmp:
        requests = Path(tmp) / "requests.jsonl"
        requests.write_text("".join(json.dumps(i) + "\n" for i in items))
        job = Path(tmp) / "job.json"
        job.write_text(
            json.dumps(
                {
                    "host": "127.0.0.1",
                    "port": port,
                    "concurrency": concurrency,
                    "seconds": seconds,
                    "requests": str(requests),
                    "expect": expect,
                }
            )
        )
        pin = ["taskset", "-c", "1"] if pinned else []
        command = [*pin, sys.executable, str(ROOT / "bench" / "post_driver.py"), str(job)]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(out)


class Ledger:
    """Counts settled payments straight from the database (the bench's own connection)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def counts(self) -> tuple[int, int]:
        query = "SELECT status, COUNT(*) FROM payments WHERE status IN ('pending', 'success') GROUP BY status"
        if self.url.startswith("sqlite://"):
            path = urlsplit(self.url).path
            with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn:
                rows = dict(conn.execute(query).fetchall())
        else:
            rows = asyncio.run(self._pg(query))
        return rows.get("pending", 0), rows.get("success", 0)

    async def _pg(self, query: str) -> dict:
        import asyncpg

        conn = await asyncpg.connect(self.url.replace("postgres://", "postgresql://", 1))
        try:
            return {r[0]: r[1] for r in await conn.fetch(query)}
        finally:
            await conn.close()


def process_items(pool: list[tuple[int, int]], cookies: dict) -> list[dict]:
    items = []
    for booking_id, user_id in pool:
        cookie, token = cookies[user_id]
        body = {
            "csrf_token": token,
            "idempotency_key": secrets.token_urlsafe(24),
            "amount": f"{FARE // 100}.{FARE % 100:02d}",
            **CARD,
        }
        items.append(
            {"path": f"/payment/process/{booking_id}", "body": urlencode(body), "cookie": cookie}
        )
    return items


def min_txn_items(pool: list[tuple[int, int]]) -> list[dict]:
    return [{"path": f"/min-txn/{b}", "body": "", "cookie": "x=1"} for b, _ in pool]


# --- the run ----------------------------------------------------------------------------


@dataclass
class Row:
    case: str
    reference: str
    app: list[dict] = field(default_factory=list)
    ref: list[dict] = field(default_factory=list)


def median(results: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in results) if results else 0.0


def measure_database(kind: str, args: argparse.Namespace) -> tuple[list[Row], dict[str, float]]:
    workdir = Path(tempfile.mkdtemp(prefix="railserve-bench-"))
    url, pg_name = new_database(kind, workdir)
    label = "sqlite" if kind == "sqlite" else "postgres"
    servers: list[Server] = []
    try:
        per_case = int(args.seconds * args.post_rate)  # one concurrency, one round
        pool_size = per_case * len(args.post_concurrency) * args.rounds
        print(f"[{label}] seeding {USERS} users, bookings and payments, {pool_size} unpaid x 2 …")
        # In a process of its own: Tortoise cannot be re-initialised from SQLite to
        # PostgreSQL inside one process.
        out = subprocess.run(
            [sys.executable, __file__, "--seed", url, str(pool_size)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        seeded = Seed(**json.loads(out.strip().splitlines()[-1]))
        seeded.app_pool = [tuple(x) for x in seeded.app_pool]
        seeded.ref_pool = [tuple(x) for x in seeded.ref_pool]
        cookies = cookies_for({u for _, u in seeded.app_pool} | {seeded.app_pool[0][1]})
        env = {
            **os.environ,
            "RAILSERVE_DATABASE_URL": url,
            "RAILSERVE_ENV": "production",
            "RAILSERVE_SECRET_KEY": SECRET,
            "RAILSERVE_WEBHOOK_SECRET": SECRET,
            "RAILSERVE_SIMUPI_WEBHOOK_SECRET": SECRET,
            "RAILSERVE_GATEWAY_DELAY": "0",
            "RAILSERVE_RATE_LIMITS": "off",
            "RAILSERVE_SWEEP_INTERVAL": "0",
            "QUART_AUTH_COOKIE_SECURE": "False",
        }
        serve = [str(BIN / "railserve"), "serve", "--workers", "1", "--server", args.server]
        app_port, ref_port, peer_port = free_port(), free_port(), free_port()
        app_serve = serve
        if args.app_root:  # another checkout (the "before" figures), with its own venv
            app_serve = [str(args.app_root / ".venv/bin/railserve"), *serve[1:]]
        app = Server(
            "app", [*app_serve, "--bind", f"127.0.0.1:{app_port}"], env, app_port, args.app_root
        )
        ref = Server(
            "reference",
            [*serve, "--bind", f"127.0.0.1:{ref_port}", "--app", "bench.reference:app"],
            env,
            ref_port,
        )
        peer = Server(
            "flask",
            [
                str(BIN / "gunicorn"),
                "-w",
                "1",
                "-b",
                f"127.0.0.1:{peer_port}",
                "--log-level",
                "warning",
                "bench.flask_peer:app",
            ],
            env,
            peer_port,
        )
        servers = [app.start("/healthz"), ref.start("/ok"), peer.start("/")]

        # The status-poll subjects belong to the first user, who also owns the pool's first.
        cookie = cookies[seeded.app_pool[0][1]][0]
        json_h = {"Accept": "application/json", "Cookie": cookie}
        hx_h = {"HX-Request": "true", "Cookie": cookie}
        page_h = {"Cookie": cookie}
        status = f"{app.url}/payment/status/"

        def size(path: str, headers: dict) -> int:
            req = urllib.request.Request(app.url + path, headers=headers)
            with urllib.request.urlopen(req) as response:
                assert response.status == 200, response.status
                return len(response.read())

        sizes = {
            "pending": size(f"/payment/status/{seeded.pending_txn}", hx_h),
            "final": size(f"/payment/status/{seeded.final_txn}", hx_h),
            "pay": size(f"/payment/pay/{seeded.pay_booking}", page_h),
        }
        one = f"{ref.url}/one-read/"
        c = args.connections
        get_cases = [
            (
                "status JSON, pending",
                f"{status}{seeded.pending_txn}",
                json_h,
                "one-read JSON",
                f"{one}{seeded.pending_txn}",
                json_h,
            ),
            (
                "status JSON, final",
                f"{status}{seeded.final_txn}",
                json_h,
                "one-read JSON",
                f"{one}{seeded.final_txn}",
                json_h,
            ),
            (
                "status JSON, final",
                f"{status}{seeded.final_txn}",
                json_h,
                "Flask peer JSON",
                f"{peer.url}/payment/status/{seeded.final_txn}",
                json_h,
            ),
            (
                "htmx partial, pending",
                f"{status}{seeded.pending_txn}",
                hx_h,
                f"one-read partial {sizes['pending']} B",
                f"{one}{seeded.pending_txn}?pad={sizes['pending']}",
                hx_h,
            ),
            (
                "htmx partial, final",
                f"{status}{seeded.final_txn}",
                hx_h,
                f"one-read partial {sizes['final']} B",
                f"{one}{seeded.final_txn}?pad={sizes['final']}",
                hx_h,
            ),
            (
                "pay page",
                f"{app.url}/payment/pay/{seeded.pay_booking}",
                page_h,
                f"one-read partial {sizes['pay']} B",
                f"{one}{seeded.final_txn}?pad={sizes['pay']}",
                hx_h,
            ),
            ("bare ok (reference only)", "", {}, "bare ok", f"{ref.url}/ok", {}),
        ]
        rows: dict[str, Row] = {}
        for name, _, _, ref_name, _, _ in get_cases:
            rows.setdefault(f"{name}|{ref_name}", Row(name, ref_name))
        for n in args.post_concurrency:
            rows[f"post{n}"] = Row(f"process post, {n} conn", "minimal payment txn")
            rows[f"done{n}"] = Row(f"  completed payments/s, {n} conn", "minimal payment txn")
            rows[f"cpu{n}"] = Row(f"  worker CPU ms/payment, {n} conn", "per transaction")
        ledger = Ledger(url)
        app_items = process_items(seeded.app_pool, cookies)
        ref_items = min_txn_items(seeded.ref_pool)
        for round_no in range(args.rounds):
            print(f"[{label}] round {round_no + 1}/{args.rounds}")
            for name, app_url, app_h, ref_name, ref_url, ref_h in (
                [] if args.posts_only else get_cases
            ):
                row = rows[f"{name}|{ref_name}"]
                if app_url:
                    row.app.append(wrk(app_url, app_h, args.seconds, c))
                row.ref.append(wrk(ref_url, ref_h, args.seconds, c))
            for n in args.post_concurrency:
                batch, app_items = app_items[:per_case], app_items[per_case:]
                pending0, success0 = ledger.counts()
                began, cpu0 = time.perf_counter(), app.cpu_seconds()
                result = drive_posts(app.port, batch, n, args.seconds)
                if not result["requests"]:
                    print(f"no posts completed: {result} ({len(batch)} prepared)")
                while ledger.counts()[0] > pending0:  # wait for the gateway's answers
                    time.sleep(0.05)
                elapsed = time.perf_counter() - began
                completed = ledger.counts()[1] - success0
                # The worker's CPU per payment, its POST and its settlement: the steadier
                # measure of what a payment costs (throughput moves with the machine).
                cpu_ms = (app.cpu_seconds() - cpu0) * 1000 / max(completed, 1)
                rows[f"post{n}"].app.append(result)
                rows[f"done{n}"].app.append(
                    {"rps": completed / elapsed, "p50_ms": 0, "p99_ms": 0, "errors": 0}
                )
                rows[f"cpu{n}"].app.append({"cpu_ms": cpu_ms})
                batch, ref_items = ref_items[:per_case], ref_items[per_case:]
                cpu0 = ref.cpu_seconds()
                ref_result = drive_posts(ref.port, batch, n, args.seconds)
                served = max(ref_result["requests"], 1)
                rows[f"cpu{n}"].ref.append({"cpu_ms": (ref.cpu_seconds() - cpu0) * 1000 / served})
                rows[f"post{n}"].ref.append(ref_result)
                rows[f"done{n}"].ref.append(ref_result)
            for server in servers:
                server.sample_rss()
        for server in servers:
            server.stop()
        rss = {s.label: s.peak_rss_mib for s in servers}
        return list(rows.values()), rss
    finally:
        for server in servers:
            server.stop()
        if pg_name:
            asyncio.run(pg_execute(kind, f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))
        shutil.rmtree(workdir, ignore_errors=True)


def fmt(results: list[dict]) -> str:
    if not results:
        return f"{'—':>7} {'':>7} {'':>7} {'':>4}"
    return (
        f"{median(results, 'rps'):7.0f} {median(results, 'p50_ms'):7.1f} "
        f"{median(results, 'p99_ms'):7.1f} {sum(r['errors'] for r in results):4d}"
    )


def print_table(label: str, rows: list[Row], rss: dict[str, float]) -> None:
    head = f"{'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'err':>4}"
    print(f"\n## {label}\n")
    print(f"{'case':34} {head}   {'reference':28} {head}   {'ratio':>5} {'p99 x':>5}")
    for row in rows:
        if row.app and "cpu_ms" in row.app[0]:
            app_ms, ref_ms = median(row.app, "cpu_ms"), median(row.ref, "cpu_ms")
            print(
                f"{row.case:34} {app_ms:7.2f} {'':20}   {row.reference:28} {ref_ms:7.2f} "
                f"{'':20}   {ref_ms / max(app_ms, 1e-9):5.2f}"
            )
            continue
        ratio = p99x = ""
        if row.app and row.ref:
            ratio = f"{median(row.app, 'rps') / max(median(row.ref, 'rps'), 1e-9):5.2f}"
            if median(row.ref, "p99_ms") and median(row.app, "p99_ms"):
                p99x = f"{median(row.app, 'p99_ms') / median(row.ref, 'p99_ms'):5.2f}"
        print(
            f"{row.case:34} {fmt(row.app)}   {row.reference:28} {fmt(row.ref)}   {ratio:>5} {p99x:>5}"
        )
    print("peak RSS (MiB): " + ", ".join(f"{name} {value:.0f}" for name, value in rss.items()))


# What bench/push.py prints, read back for the summary table.
PUSH_FIGURES = {
    "opened": r"opened \d+ streams in ([\d.]+) s",
    "rss": r"worker RSS (\d+) -> (\d+) MiB",
    "idle": r"idle, \d+ streams open: server CPU ([\d.]+)%",
    "load": r"settling (\d+)/s for \d+ s \((\d+) events, (\d+) missed\): server CPU ([\d.]+)%",
    "latency": r"webhook sent -> event.*?p50 (-?\d+) ms, p99 (-?\d+) ms, max (-?\d+) ms",
    "closed": r"told `close` after their final card: (\d+)/(\d+)",
    "polling": r"would need (\d+)% of one core",
}


def run_push(kind: str, streams: int, server: str) -> dict[str, tuple[str, ...]] | None:
    """bench/push.py on this database with `streams` streams; its output and figures."""
    command = [sys.executable, str(ROOT / "bench" / "push.py"), "--streams", str(streams)]
    command += ["--server", server]
    if kind != "sqlite":
        command += ["--database-url", kind]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    label = "SQLite" if kind == "sqlite" else "PostgreSQL"
    print(f"\n## Live push, {label}, {streams} streams (bench/push.py)\n")
    print(done.stdout.strip() or done.stderr[-3000:])
    if done.returncode:
        return None
    found = {name: re.search(pattern, done.stdout) for name, pattern in PUSH_FIGURES.items()}
    return {name: match.groups() if match else ("?",) for name, match in found.items()}


def print_push_table(results: list[tuple[str, int, dict | None]]) -> None:
    print(
        "\n## Live push, one worker: webhook sent -> stream event (an upper bound of commit -> event)\n"
    )
    print(
        f"{'database':10} {'streams':>7} {'open s':>6} {'RSS MiB':>11} {'idle CPU':>8} "
        f"{'rate':>5} {'load CPU':>8} {'p50 ms':>6} {'p99 ms':>6} {'max ms':>6} "
        f"{'missed':>6} {'closed':>9} {'polling 1/s instead':>19}"
    )
    for label, streams, figures in results:
        if figures is None:
            print(f"{label:10} {streams:7d}  failed (its output is above)")
            continue
        rate, _, missed, load = figures["load"] if len(figures["load"]) == 4 else ("?",) * 4
        p50, p99, worst = figures["latency"] if len(figures["latency"]) == 3 else ("?",) * 3
        print(
            f"{label:10} {streams:7d} {figures['opened'][0]:>6} "
            f"{' -> '.join(figures['rss']):>11} {figures['idle'][0] + '%':>8} "
            f"{rate + '/s':>5} {load + '%':>8} {p50:>6} {p99:>6} {worst:>6} {missed:>6} "
            f"{'/'.join(figures['closed']):>9} {figures['polling'][0] + '% of a core':>19}"
        )


# Issue 19's targets: the app's throughput as a share of its reference's, per database.
TARGETS = {
    "PostgreSQL": [
        ("process post, 1 conn", 0.6),
        ("process post, 8 conn", 0.75),
        ("process post, 32 conn", 0.75),
        ("pay page", 0.6),
    ],
    "SQLite": [
        ("process post, 1 conn", 0.5),
        ("process post, 8 conn", 0.75),
        ("process post, 32 conn", 0.95),
        ("pay page", 0.6),
    ],
}
RUSH_TARGET = 0.6


def print_targets(tables: list[tuple[str, list[Row], dict]], rush: float | None) -> None:
    """Each target of issue 19 with this run's ratio: met or not."""
    print("\n## Issue 19's targets (app / reference throughput, medians of the rounds)\n")
    lines = []
    for label, rows, _ in tables:
        for case, goal in TARGETS[label]:
            row = next((r for r in rows if r.case == case and r.app and r.ref), None)
            ratio = row and median(row.app, "rps") / max(median(row.ref, "rps"), 1e-9)
            lines.append((f"{label}, {case}", ratio, goal))
    lines.append(("Tatkal rush (PostgreSQL, --rush)", rush, RUSH_TARGET))
    for name, ratio, goal in lines:
        verdict = "not measured" if ratio is None else "met" if ratio >= goal else "NOT MET"
        shown = "" if ratio is None else f"{ratio:5.2f}"
        print(f"{name:44} {shown:>5} (target >= {goal:.2f}): {verdict}")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so that `finally` stops the servers


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per case and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (GETs)")
    parser.add_argument(
        "--post-concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 32]
    )
    parser.add_argument(
        "--post-rate", type=float, default=700.0, help="posts/s to provision bookings for"
    )
    parser.add_argument(
        "--databases",
        default="sqlite,postgres://postgres@127.0.0.1:5432/postgres",
        help="comma-separated: sqlite and/or a PostgreSQL server URL (a throwaway DB is made)",
    )
    parser.add_argument(
        "--server", default=os.environ.get("RAILSERVE_SERVER", ""), help="default: railserve's"
    )
    parser.add_argument(
        "--app-root",
        type=Path,
        help="serve the app from this checkout (with its own .venv): the 'before' figures",
    )
    parser.add_argument(
        "--push",
        type=lambda s: [int(x) for x in s.split(",") if x],
        default=[1000, 5000],
        help="stream counts for the live-push benchmark ('' to skip it)",
    )
    parser.add_argument(
        "--posts-only", action="store_true", help="skip the GET cases (a quicker look at posts)"
    )
    parser.add_argument(
        "--rush",
        action="store_true",
        help="the Tatkal rush alone, without the tables (bench/rush.py; PostgreSQL)",
    )
    parser.add_argument(
        "--no-rush", action="store_true", help="the tables without the rush at their end"
    )
    parser.add_argument("--rush-passengers", type=int, default=2000)
    parser.add_argument("--rush-seats", type=int, default=100)
    parser.add_argument("--rush-connections", type=int, default=64)
    parser.add_argument("--rush-workers", type=int, default=4)
    parser.add_argument(
        "--rush-reference",
        choices=["rush-txn", "rush-held"],
        default="rush-txn",
        help="rush-held: the experiment that holds the train row as the app does (README)",
    )
    parser.add_argument("--seed", nargs=2, metavar=("URL", "POOL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed:
        from dataclasses import asdict

        print(json.dumps(asdict(asyncio.run(seed(args.seed[0], int(args.seed[1]))))))
        return
    if not args.server:
        from railserve.cli import build_parser

        serve = build_parser().parse_args(["serve"])
        args.server = serve.server
    if args.rush:
        from bench.rush import main as rush

        raise SystemExit(rush(args))
    ensure_tools()
    import platform

    print(
        f"conditions: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, Python {platform.python_version()}, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; server {args.server}, "
        f"1 worker on core 0; load on core 1 (wrk -t1 -c{args.connections}; post driver); "
        f"{args.rounds} x {args.seconds:g} s, medians"
    )
    tables = []
    for kind in args.databases.split(","):
        label = "SQLite" if kind == "sqlite" else "PostgreSQL"
        rows, rss = measure_database(kind, args)
        tables.append((label, rows, rss))
        print_table(f"{label}, {args.server}", rows, rss)
    pushes = []
    for kind in args.databases.split(","):
        label = "SQLite" if kind == "sqlite" else "PostgreSQL"
        for streams in args.push:
            pushes.append((label, streams, run_push(kind, streams, args.server)))
    if pushes:
        print_push_table(pushes)
    figures: dict = {}
    if not args.no_rush and "postgres" in args.databases:
        from bench.rush import main as rush

        print()
        rush(args, figures)
    print_targets(tables, figures.get("ratio"))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
