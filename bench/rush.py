"""The Tatkal rush: one train, few seats, everyone paying at the same moment.

    .venv/bin/python bench/run.py --rush                     # 2,000 payers, 100 seats, 64 conn
    .venv/bin/python bench/run.py --rush --rush-passengers 400 --rush-seats 20   # a quick look

PostgreSQL only (a throwaway database, dropped afterwards). One train with `--rush-seats`
seats and `--rush-passengers` passengers, each holding a one-passenger booking (written
straight into the database: users, one shared password hash, bookings). The app runs as
`railserve serve --workers 4` (production settings, gateway delay 0, rate limits and the
sweeper off, not pinned: the workers, PostgreSQL and the driver share the machine's cores).
bench/post_driver.py sends every passenger's process post (test card 4242 4242 4242 4242)
at once over 64 keep-alive connections; the simulated gateway settles each attempt in the
worker that started it. Completed payments/s is the number of payers over the time from
the first post to the moment every attempt is final (read from the database every 20 ms).

The reference is the minimal payment transaction of bench/reference.py (insert a payment
and its event, take a seat by the one-row conditional update of the train's row), served
the same way (`railserve serve --workers 4 --app bench.reference:app`), driven the same way
(64 connections, one post per passenger) against a copy of the same seeded database: the
same train row is the hot row. It runs before and after the app; the ratio uses their mean.

While the app runs, it samples `pg_stat_activity` (what each of the database's backends is
waiting on) and the CPU time of the server's processes and of the database's backends
(from /proc), to say what limits the figure. Afterwards it checks what the rush left:
errors, seats confirmed, the waitlist and its order, and `railserve check`.

Only public interfaces: HTTP, the `railserve` command and the database's rows.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FARE = 125000
POLL = 0.02  # seconds between two reads of the ledger while waiting for the last attempt


# --- set-up -----------------------------------------------------------------------------


async def seed(url: str, passengers: int, seats: int) -> dict:
    """A train with `seats` seats and `passengers` users each holding a booking on it."""
    from argon2 import PasswordHasher

    from railserve import db
    from railserve.models import Booking, BookingStatus, Train, User

    await db.migrate(url)
    await db.init(url)
    try:
        train = await Train.create(
            number="TATKAL1",
            name="Tatkal Express",
            origin="New Delhi",
            destination="Mumbai Central",
            departs_at=datetime.now(UTC) + timedelta(days=1),
            total_seats=seats,
            seats_left=seats,
            fare=FARE,
        )
        password = PasswordHasher().hash("rush-password")
        await User.bulk_create(
            [
                User(name=f"Rush {i}", email=f"rush{i}@example.com", password_hash=password)
                for i in range(passengers)
            ],
            batch_size=2000,
        )
        users = dict(await User.filter(email__startswith="rush").values_list("email", "id"))
        await Booking.bulk_create(
            [
                Booking(
                    pnr=f"T{i:09d}",
                    user_id=users[f"rush{i}@example.com"],
                    train_id=train.id,
                    passengers=[f"Rush Passenger {i}"],
                    passenger_count=1,
                    amount=FARE,
                    status=BookingStatus.PENDING_PAYMENT,
                )
                for i in range(passengers)
            ],
            batch_size=2000,
        )
        rows = await Booking.filter(train_id=train.id).order_by("id").values_list("id", "user_id")
        return {"train_id": train.id, "bookings": [list(r) for r in rows]}
    finally:
        await db.close()


async def pg(url: str, query: str, *args, fetch: bool = True) -> list:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
    try:
        return await (conn.fetch if fetch else conn.execute)(query, *args)
    finally:
        await conn.close()


def copy_database(base: str, template: str) -> tuple[str, str]:
    """A copy of the seeded database (CREATE DATABASE … TEMPLATE), for a reference run."""
    from bench.run import pg_execute

    name = f"rs_rush_{uuid.uuid4().hex[:8]}"
    asyncio.run(pg_execute(base, f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    parts = urlsplit(base.replace("postgresql://", "postgres://", 1))
    return urlunsplit(parts._replace(path="/" + name)), name


# --- measuring --------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process, from /proc (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(values[:8]) - idle) / tick, sum(values[:8]) / tick


class Watcher:
    """Samples the database's backends every 50 ms while the rush runs: how many are
    running, waiting on a lock (the hot train row), waiting on their client (a worker
    that holds a transaction open but is not running) and so on; and their pids."""

    def __init__(self, database: str, ignore: set[int]) -> None:
        self.database, self.ignore = database, ignore
        self.samples = 0
        self.waits: Counter[str] = Counter()
        self.in_transaction = 0
        self.pids: set[int] = set()
        self.tuple_lock_on_trains = 0
        self.holder: Counter[str] = Counter()  # what the lock holder was doing, per sample

    async def run(self, conn, stop: asyncio.Event) -> None:
        self.ignore.add(conn.get_server_pid())
        while not stop.is_set():
            rows = await conn.fetch(
                "SELECT pid, state, wait_event_type, wait_event, xact_start IS NOT NULL AS tx "
                "FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend'",
                self.database,
            )
            hot = await conn.fetchval(
                "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                "WHERE l.locktype = 'tuple' AND c.relname = 'trains' AND l.database = "
                "(SELECT oid FROM pg_database WHERE datname = $1)",
                self.database,
            )
            # The holder of what the others wait for (the train row): blocking them and not
            # itself waiting on a lock. Idle in transaction = waiting for its worker to send
            # the next statement; running = PostgreSQL at work; IO/LWLock = committing.
            holders = await conn.fetch(
                "SELECT h.state, h.wait_event_type, h.wait_event FROM pg_stat_activity h "
                "WHERE h.pid IN (SELECT unnest(pg_blocking_pids(w.pid)) FROM pg_stat_activity w "
                "WHERE w.datname = $1 AND w.wait_event_type = 'Lock') "
                "AND h.wait_event_type IS DISTINCT FROM 'Lock'",
                self.database,
            )
            self.samples += 1
            self.tuple_lock_on_trains += hot
            for h in holders:
                if h["state"] == "idle in transaction":
                    self.holder["idle in transaction: waiting for its worker"] += 1
                elif h["wait_event_type"] is None:
                    self.holder["running a statement"] += 1
                else:
                    self.holder[f"{h['wait_event_type']}/{h['wait_event']}"] += 1
            if not holders:
                self.holder["nobody waits on a lock"] += 1
            for row in rows:
                if row["pid"] in self.ignore:
                    continue
                self.pids.add(row["pid"])
                if row["state"] == "idle":
                    continue
                self.in_transaction += bool(row["tx"])
                if row["state"] == "idle in transaction":
                    what = "idle in transaction (waiting for its worker)"
                elif row["wait_event_type"] is None:
                    what = "running (on a CPU or ready to)"
                else:
                    what = f"waiting: {row['wait_event_type']}/{row['wait_event']}"
                self.waits[what] += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.05)

    def report(self) -> list[str]:
        n = max(self.samples, 1)
        lines = [f"backends of the database, average over {self.samples} samples:"]
        for what, count in self.waits.most_common(8):
            lines.append(f"  {count / n:5.1f}  {what}")
        lines.append(
            f"  {self.in_transaction / n:5.1f}  inside a transaction; "
            f"{self.tuple_lock_on_trains / n:.1f} tuple locks on the trains row held or awaited"
        )
        seen = max(sum(self.holder.values()), 1)
        lines.append(
            "the lock holder others wait on (the train row), share of samples: "
            + "; ".join(f"{what} {100 * c / seen:.0f}%" for what, c in self.holder.most_common(5))
        )
        return lines


# --- what the rush left -----------------------------------------------------------------


def inversions(order: list[int], rank: dict[int, int]) -> int:
    """Pairs out of order: `order` compared with the order `rank` gives (merge count)."""
    values = [rank[x] for x in order]

    def sort(xs: list[int]) -> tuple[list[int], int]:
        if len(xs) < 2:
            return xs, 0
        mid = len(xs) // 2
        left, a = sort(xs[:mid])
        right, b = sort(xs[mid:])
        merged, count, i, j = [], a + b, 0, 0
        while i < len(left) and j < len(right):
            if left[i] <= right[j]:
                merged.append(left[i])
                i += 1
            else:
                merged.append(right[j])
                count += len(left) - i
                j += 1
        return merged + left[i:] + right[j:], count

    return sort(values)[1]


async def outcome(url: str, train_id: int) -> dict:
    """What the rush left in the database, from its rows."""
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
    try:
        train = await conn.fetchrow(
            "SELECT total_seats, seats_left FROM trains WHERE id = $1", train_id
        )
        statuses = dict(
            await conn.fetch(
                "SELECT status, count(*) FROM bookings WHERE train_id = $1 GROUP BY status",
                train_id,
            )
        )
        payments = dict(await conn.fetch("SELECT status, count(*) FROM payments GROUP BY status"))
        confirmed_passengers = await conn.fetchval(
            "SELECT coalesce(sum(passenger_count), 0) FROM bookings "
            "WHERE train_id = $1 AND status = 'confirmed'",
            train_id,
        )
        held = await conn.fetch(
            "SELECT b.id, b.status, b.paid_at, p.completed_at, p.id AS payment_id "
            "FROM bookings b JOIN payments p ON p.booking_id = b.id AND p.status = 'success' "
            "WHERE b.train_id = $1 AND b.status IN ('confirmed', 'waitlisted')",
            train_id,
        )
        told = {
            r["booking_id"]: int(m.group(1))
            for r in await conn.fetch(
                "SELECT booking_id, message FROM notifications WHERE kind = 'waitlist'"
            )
            if (m := re.search(r"position (\d+)", r["message"]))
        }
    finally:
        await conn.close()
    waiting = [r for r in held if r["status"] == "waitlisted"]
    confirmed = [r for r in held if r["status"] == "confirmed"]
    by_paid = [r["id"] for r in sorted(waiting, key=lambda r: (r["paid_at"], r["id"]))]
    by_success = [
        r["id"] for r in sorted(waiting, key=lambda r: (r["completed_at"], r["payment_id"]))
    ]
    success_rank = {b: i for i, b in enumerate(by_success)}
    # Seat allotment against success order: waitlisted payments that succeeded before the
    # last confirmed one did.
    last_confirmed = max((r["completed_at"] for r in confirmed), default=None)
    overtaken = sum(1 for r in waiting if last_confirmed and r["completed_at"] < last_confirmed)
    return {
        "total_seats": train["total_seats"],
        "seats_left": train["seats_left"],
        "confirmed": statuses.get("confirmed", 0),
        "confirmed_passengers": confirmed_passengers,
        "waitlisted": statuses.get("waitlisted", 0),
        "bookings": statuses,
        "payments": payments,
        "waitlist_equal": by_paid == by_success,
        "waitlist_inversions": inversions(by_paid, success_rank),
        "waitlist_displaced": sum(1 for a, b in zip(by_paid, by_success, strict=True) if a != b),
        "told_in_order": [told.get(b) for b in by_paid] == list(range(1, len(by_paid) + 1)),
        "confirmed_before_waitlisted": (
            not confirmed
            or not waiting
            or max(r["paid_at"] for r in confirmed) < min(r["paid_at"] for r in waiting)
        ),
        "waitlisted_succeeded_before_last_confirmed": overtaken,
    }


# --- the run ----------------------------------------------------------------------------


def conditions() -> dict[str, str]:
    cpu = "?"
    with contextlib.suppress(OSError):
        match = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = match.group(1).strip() if match else "?"
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout.strip()
    return {
        "time": f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC",
        "machine": f"{platform.node()}, {os.cpu_count()} cores ({cpu}), Python "
        f"{platform.python_version()}",
        "commit": commit + (" (with uncommitted changes)" if dirty else ""),
        "load": "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg()),
    }


def items_for(pool: list[list[int]], cookies: dict[int, tuple[str, str]], path: str) -> list[dict]:
    from bench.run import CARD

    out = []
    for booking_id, user_id in pool:
        cookie, token = cookies[user_id]
        body = {
            "csrf_token": token,
            "idempotency_key": uuid.uuid4().hex,
            "amount": f"{FARE // 100}.{FARE % 100:02d}",
            **CARD,
        }
        out.append({"path": path.format(booking_id), "body": urlencode(body), "cookie": cookie})
    return out


def run_reference(url: str, args: argparse.Namespace, pool: list[list[int]], env: dict) -> dict:
    from bench.run import Server, free_port

    port = free_port()
    serve = [str(BIN / "railserve"), "serve", "--workers", str(args.rush_workers)]
    serve += ["--server", args.server, "--bind", f"127.0.0.1:{port}"]
    server = Server(
        "rush-reference",
        [*serve, "--app", "bench.reference:app"],
        {**env, "RAILSERVE_DATABASE_URL": url},
        port,
        cores=f"0-{(os.cpu_count() or 1) - 1}",
    )
    path = f"/{args.rush_reference}/"
    items = [{"path": f"{path}{b}", "body": "", "cookie": "x=1"} for b, _ in pool]
    try:
        server.start("/ok")
        window = asyncio.run(rush_window(server, url, urlsplit(url).path[1:], items, args))
    finally:
        server.stop()
    if window is None:
        raise RuntimeError("the reference did not finish within 600 s")
    result, final_at, server_cpu, pg_cpu, _, watcher, _ = window
    result["completed"] = len(items) / (final_at - result["started_at"])
    left = asyncio.run(pg(url, "SELECT seats_left FROM trains WHERE number = 'TATKAL1'"))[0][
        "seats_left"
    ]
    return {**result, "seats_left": left, "cpu": (server_cpu, pg_cpu), "watcher": watcher}


async def rush_window(app, url: str, database: str, items: list[dict], args) -> tuple | None:
    """Every post at once; the time until every attempt is final, and what was busy."""
    import asyncpg

    from bench.run import drive_posts

    dsn = url.replace("postgres://", "postgresql://", 1)
    ledger, sampler = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    try:
        ignore = {ledger.get_server_pid()}
        pg_before = {
            r["pid"]: cpu_seconds(r["pid"])
            for r in await ledger.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1", database
            )
        }
        server_before = sum(cpu_seconds(p) for p in app.pids())
        busy_before, total_before = machine_busy()
        watcher = Watcher(database, ignore)
        stop = asyncio.Event()
        sampling = asyncio.create_task(watcher.run(sampler, stop))
        driving = asyncio.create_task(
            asyncio.to_thread(
                drive_posts, app.port, items, args.rush_connections, 3600, pinned=False
            )
        )
        load_during = os.getloadavg()[0]
        deadline = time.monotonic() + 600
        final_at = None
        while time.monotonic() < deadline:
            row = await ledger.fetchrow(
                "SELECT count(*) AS n, count(*) FILTER (WHERE status = 'pending') AS p "
                "FROM payments"
            )
            if row["p"] == 0 and (row["n"] == len(items) or driving.done()):
                final_at = time.monotonic()
                break
            await asyncio.sleep(POLL)
        done = await driving
        stop.set()
        await sampling
        busy_after, total_after = machine_busy()
        server_cpu = sum(cpu_seconds(p) for p in app.pids()) - server_before
        pg_cpu = sum(max(0.0, cpu_seconds(pid) - pg_before.get(pid, 0.0)) for pid in watcher.pids)
        load_during = max(load_during, os.getloadavg()[0])
    finally:
        await ledger.close()
        await sampler.close()
    if final_at is None:
        return None
    busy = (busy_after - busy_before, total_after - total_before)
    return done, final_at, server_cpu, pg_cpu, busy, watcher, load_during


def main(args: argparse.Namespace, figures: dict | None = None) -> int:
    """The rush, printed; `figures` (if given) gets its ratio to the reference."""
    from bench.run import SECRET, Server, cookies_for, ensure_tools, free_port, new_database

    ensure_tools()
    base = next(
        (k for k in args.databases.split(",") if k.startswith(("postgres://", "postgresql://"))),
        "postgres://postgres@127.0.0.1:5432/postgres",
    )
    n, seats = args.rush_passengers, args.rush_seats
    before = conditions()
    print(
        f"Tatkal rush: {n} passengers, {seats} seats, {args.rush_connections} connections, "
        f"railserve serve --workers {args.rush_workers} ({args.server}), PostgreSQL; "
        f"reference: bench/reference.py /{args.rush_reference}/"
    )
    print(f"conditions: {before['time']}; {before['machine']}; commit {before['commit']}")
    print(f"load average before (1, 5, 15 min): {before['load']}")
    url, name = new_database(base, Path(tempfile.gettempdir()))
    made = [name]
    try:
        began = time.monotonic()
        out = subprocess.run(
            [sys.executable, __file__, "--seed", url, str(n), str(seats)],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        ).stdout
        seeded = json.loads(out.strip().splitlines()[-1])
        pool = seeded["bookings"]
        refs = []
        for _ in range(2):
            ref_url, ref_name = copy_database(base, name)
            made.append(ref_name)
            refs.append(ref_url)
        cookies = cookies_for({u for _, u in pool})
        print(f"seeded in {time.monotonic() - began:.1f} s")
        env = {
            **os.environ,
            "RAILSERVE_ENV": "production",
            "RAILSERVE_SECRET_KEY": SECRET,
            "RAILSERVE_WEBHOOK_SECRET": SECRET,
            "RAILSERVE_SIMUPI_WEBHOOK_SECRET": SECRET,
            "RAILSERVE_GATEWAY_DELAY": "0",
            "RAILSERVE_RATE_LIMITS": "off",
            "RAILSERVE_SWEEP_INTERVAL": "0",
            "QUART_AUTH_COOKIE_SECURE": "False",
        }

        reference = [run_reference(refs[0], args, pool, env)]
        print(
            f"reference (before): {reference[0]['completed']:.0f} txn/s, "
            f"errors {reference[0]['errors']}, load {os.getloadavg()[0]:.2f}"
        )

        port = free_port()
        serve = [str(BIN / "railserve"), "serve", "--workers", str(args.rush_workers)]
        serve += ["--server", args.server, "--bind", f"127.0.0.1:{port}"]
        app_env = {**env, "RAILSERVE_DATABASE_URL": url}
        if args.app_root:  # another checkout (the "before" figures), on this venv's packages
            app_env["PYTHONPATH"] = str(args.app_root)
            print(f"app served from {args.app_root}")
        app = Server(
            "rush-app",
            serve,
            app_env,
            port,
            cwd=args.app_root,
            cores=f"0-{(os.cpu_count() or 1) - 1}",
        )
        items = items_for(pool, cookies, "/payment/process/{}")
        try:
            app.start("/healthz")
            window = asyncio.run(rush_window(app, url, name, items, args))
        finally:
            app.stop()
        if window is None:
            print("not every attempt became final within 600 s")
            return 1
        done, final_at, server_cpu, pg_cpu, busy, watcher, load_during = window
        window = final_at - done["started_at"]
        completed = n / window
        machine, machine_total = busy

        reference.append(run_reference(refs[1], args, pool, env))
        print(
            f"reference (after): {reference[1]['completed']:.0f} txn/s, "
            f"errors {reference[1]['errors']}, load {os.getloadavg()[0]:.2f}"
        )
        ref_rps = statistics.mean(r["completed"] for r in reference)
        ref_posts = statistics.mean(r["rps"] for r in reference)

        left = asyncio.run(outcome(url, seeded["train_id"]))
        check = subprocess.run(
            [str(BIN / "railserve"), "check"],
            env={**env, "RAILSERVE_DATABASE_URL": url},
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        after = conditions()

        cores = os.cpu_count() or 1
        print()
        print(
            f"## Tatkal rush, PostgreSQL: {n} payers, {seats} seats, {args.rush_connections} connections\n"
        )
        head = f"{'':38} {'app':>12} {'reference':>12} {'ratio':>6}"
        print(head)
        print(
            f"{'completed payments/s':38} {completed:12.0f} {ref_rps:12.0f} {completed / ref_rps:6.2f}"
        )
        print(
            f"{'posts/s (answers)':38} {done['rps']:12.0f} {ref_posts:12.0f} "
            f"{done['rps'] / ref_posts:6.2f}"
        )
        ref_p50 = statistics.mean(r["p50_ms"] for r in reference)
        ref_p99 = statistics.mean(r["p99_ms"] for r in reference)
        print(f"{'post p50 ms':38} {done['p50_ms']:12.1f} {ref_p50:12.1f}")
        print(f"{'post p99 ms':38} {done['p99_ms']:12.1f} {ref_p99:12.1f}")
        print(
            f"{'errors':38} {done['errors']:12d} {sum(r['errors'] for r in reference):12d}"
            f"   (answers: {done['statuses']})"
        )
        print(f"{'time until every attempt is final, s':38} {window:12.2f}")
        print(
            f"{'seats confirmed (of ' + str(seats) + ')':38} {left['confirmed']:12d} "
            f"{seats - reference[1]['seats_left']:12d}"
        )
        print(
            f"{'confirmed passengers = seats taken':38} "
            f"{left['confirmed_passengers'] == left['total_seats'] - left['seats_left']!s:>12}"
        )
        print(f"{'seats left (never below 0)':38} {left['seats_left']:12d}")
        print(f"{'waitlisted (of ' + str(n - seats) + ')':38} {left['waitlisted']:12d}")
        print(
            f"{'waitlist in success order':38} {left['waitlist_equal']!s:>12}"
            f"   (paid_at order vs completed_at order: {left['waitlist_inversions']} pairs "
            f"inverted, {left['waitlist_displaced']} places differ)"
        )
        print(f"{'positions told = paid_at order':38} {left['told_in_order']!s:>12}")
        print(
            f"{'all confirmed paid before waitlisted':38} "
            f"{left['confirmed_before_waitlisted']!s:>12}   ("
            f"{left['waitlisted_succeeded_before_last_confirmed']} waitlisted payments "
            "succeeded before the last confirmed one)"
        )
        print(f"{'payments by status':38} {left['payments']}")
        verdict = "clean" if check.returncode == 0 else f"exit {check.returncode}"
        print(f"{'railserve check':38} {verdict:>12}")
        if check.returncode:
            print(check.stdout[-3000:] + check.stderr[-2000:])
        print()
        print(
            f"CPU over the {window:.1f} s (seconds of CPU; {cores} cores = "
            f"{cores * window:.1f} s available): app server {server_cpu:.1f} "
            f"({100 * server_cpu / window:.0f}% of a core), its PostgreSQL backends "
            f"{pg_cpu:.1f} ({100 * pg_cpu / window:.0f}%), whole machine {machine:.1f} "
            f"({100 * machine / machine_total:.0f}% busy; everything else, the driver and "
            f"the neighbours: {machine - server_cpu - pg_cpu:.1f})"
        )
        for line in watcher.report():
            print(line)
        for label, ref in zip(("before", "after"), reference, strict=True):
            server_cpu_ref, pg_cpu_ref = ref["cpu"]
            print(
                f"reference ({label}), over {ref['elapsed']:.1f} s: server "
                f"{100 * server_cpu_ref / ref['elapsed']:.0f}% of a core, PostgreSQL backends "
                f"{100 * pg_cpu_ref / ref['elapsed']:.0f}%"
            )
            for line in ref["watcher"].report():
                print(line)
        print(
            f"load average: before {before['load']}, during (1 min) {load_during:.2f}, "
            f"after {after['load']}"
        )
        ok = (
            done["errors"] == 0
            and left["confirmed"] == seats
            and left["waitlisted"] == n - seats
            and left["seats_left"] == 0
            and check.returncode == 0
        )
        if figures is not None:
            figures["ratio"] = completed / ref_rps
        print(
            f"\nrush invariants {'hold' if ok else 'BROKEN'}; target ratio >= 0.6: "
            f"{'met' if completed / ref_rps >= 0.6 else 'not met'} ({completed / ref_rps:.2f})"
        )
        return 0 if ok else 1
    finally:
        from bench.run import pg_execute

        for db_name in reversed(made):
            asyncio.run(pg_execute(base, f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    if len(sys.argv) == 5 and sys.argv[1] == "--seed":
        print(json.dumps(asyncio.run(seed(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))))
    else:
        print("run it as: bench/run.py --rush", file=sys.stderr)
        raise SystemExit(2)
