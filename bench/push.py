"""Benchmark live push: N event streams against one worker, payments settled at a steady rate.

Starts `railserve serve --workers 1` on a fresh database (pinned to one core when the
machine has two or more), makes N pending attempts for one passenger straight in the
database, opens one event stream per attempt, then:

1. idle: measures the server's CPU while the N streams wait (heartbeats included);
2. load: settles attempts through the signed webhook at `--rate` per second and measures
   the time from the webhook's 200 (the commit is before it) to the stream's `status`
   event, and from sending the webhook to that event, with the server's CPU meanwhile;
3. polling, for comparison: closes the streams and measures with wrk (or httpx) what one
   poll of the pending htmx partial costs in server CPU, then what N watchers polling once
   a second would cost.

    .venv/bin/python bench/push.py --streams 1000
    .venv/bin/python bench/push.py --streams 5000 --database-url postgres://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from railserve import db
from tests.support import database
from tests.support.database import DatabaseFactory
from tests.support.server import LiveServer, railserve

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
WRK = ("wrk", "-t", "1", "-c", "16")


# --- the server's CPU, from /proc -------------------------------------------------------
def session_pids(leader: int) -> list[int]:
    """Every process of the server's session (start_new_session): supervisor and worker."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == leader:
                    pids.append(int(entry.name))
            except (ProcessLookupError, PermissionError):
                continue
    return pids


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / CLOCK_TICKS


def pin(pids: list[int], core: int) -> bool:
    try:
        for pid in pids:
            for task in Path(f"/proc/{pid}/task").iterdir():
                os.sched_setaffinity(int(task.name), {core})
        return True
    except (OSError, AttributeError):
        return False


# --- set-up -----------------------------------------------------------------------------
async def sign_up(base: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=base, timeout=60)
    page = (await client.get("/auth/register")).text
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    email = f"push-{uuid.uuid4().hex[:8]}@example.com"
    reply = await client.post(
        "/auth/register",
        data={"csrf_token": token, "name": "Bench", "email": email, "password": "benchmark-pw"},
    )
    assert reply.status_code == 303, reply.text[:300]
    client.email = email  # type: ignore[attr-defined]
    return client


async def make_attempts(database_url: str, email: str, count: int) -> list[str]:
    """N pending attempts, inserted directly: the HTTP flow is not what is measured."""
    from railserve.models import Booking, Train, User
    from railserve.payment.models import Payment, PaymentMethod
    from railserve.payment.service import new_transaction_id

    await db.init(database_url)
    try:
        user = await User.get(email=email)
        train = await Train.get(number="P1")
        bookings = [
            Booking(
                pnr=secrets.token_hex(5).upper(),
                user_id=user.id,
                train_id=train.id,
                passengers=["Bench"],
                passenger_count=1,
                amount=10000,
            )
            for _ in range(count)
        ]
        await Booking.bulk_create(bookings, batch_size=500)
        made = await Booking.filter(user_id=user.id).order_by("id").values_list("id", flat=True)
        payments = [
            Payment(
                transaction_id=new_transaction_id(),
                booking_id=booking_id,
                user_id=user.id,
                method=PaymentMethod.CREDIT_CARD,
                amount=10000,
                instrument="Visa •••• 4242",
                idempotency_key=secrets.token_urlsafe(24),
                pending_lock=booking_id,
            )
            for booking_id in made
        ]
        await Payment.bulk_create(payments, batch_size=500)
        return [p.transaction_id for p in payments]
    finally:
        await db.close()


# --- event streams over raw sockets (light enough for thousands in one process) ----------
class Watcher:
    def __init__(self, transaction_id: str) -> None:
        self.transaction_id = transaction_id
        self.opened = asyncio.Event()
        self.events: list[tuple[str, float]] = []
        self.changed = asyncio.Event()
        self.task: asyncio.Task | None = None

    async def run(self, port: int, cookie: str) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**20)
        request = (
            f"GET /payment/events/{self.transaction_id} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Accept: text/event-stream\r\nCookie: {cookie}\r\n\r\n"
        )
        writer.write(request.encode())
        try:
            name = ""
            while line := await reader.readline():
                text = line.decode(errors="replace").rstrip("\r\n")
                if text.startswith("event: "):
                    name = text[7:]
                elif text == "" and name:
                    self.events.append((name, time.monotonic()))
                    if name == "status" and not self.opened.is_set():
                        self.opened.set()
                    else:
                        self.changed.set()
                    name = ""
        finally:
            writer.close()


async def open_streams(port: int, cookie: str, transaction_ids: list[str]) -> list[Watcher]:
    watchers = [Watcher(t) for t in transaction_ids]
    for start in range(0, len(watchers), 100):  # in waves: no SYN flood on the listener
        batch = watchers[start : start + 100]
        for watcher in batch:
            watcher.task = asyncio.create_task(watcher.run(port, cookie))
        await asyncio.wait_for(asyncio.gather(*(w.opened.wait() for w in batch)), 120)
    return watchers


def webhook_body(transaction_id: str) -> bytes:
    return json.dumps(
        {
            "id": "evt_" + secrets.token_hex(12),
            "type": "payment.succeeded",
            "transaction_id": transaction_id,
            "amount": "100.00",
            "currency": "INR",
            "failure_reason": None,
            "created": int(time.time()),
        }
    ).encode()


async def settle_at_rate(
    server: LiveServer, watchers: list[Watcher], rate: float, seconds: float
) -> dict[str, list[float]]:
    from railserve.payment.signature import sign

    secret = server.env["RAILSERVE_WEBHOOK_SECRET"]
    after_ok: list[float] = []
    after_send: list[float] = []
    missed = 0

    async def one(client: httpx.AsyncClient, watcher: Watcher) -> None:
        nonlocal missed
        body = webhook_body(watcher.transaction_id)
        headers = {"RailServe-Signature": sign(secret, body, int(time.time()))}
        sent = time.monotonic()
        reply = await client.post("/payment/webhook", content=body, headers=headers)
        ok = time.monotonic()
        assert reply.status_code == 200, reply.text
        try:
            await asyncio.wait_for(watcher.changed.wait(), 5)
        except TimeoutError:
            missed += 1
            return
        arrived = next(t for name, t in watcher.events[1:] if name == "status")
        after_ok.append(max(0.0, arrived - ok))
        after_send.append(arrived - sent)

    count = int(rate * seconds)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        pending = []
        began = time.monotonic()
        for i, watcher in enumerate(watchers[:count]):
            await asyncio.sleep(max(0.0, began + i / rate - time.monotonic()))
            pending.append(asyncio.create_task(one(client, watcher)))
        await asyncio.gather(*pending)
    return {"after_ok": after_ok, "after_send": after_send, "missed": [missed]}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] if ordered else float("nan")


def poll_cost(server: LiveServer, pids: list[int], cookie: str, txn: str, seconds: float):
    """CPU seconds per poll of the pending htmx partial, measured under wrk (or httpx)."""
    url = f"{server.url}/payment/status/{txn}"
    before = cpu_seconds(pids)
    if shutil.which("wrk"):
        out = subprocess.run(
            [
                *WRK,
                "-d",
                f"{seconds:.0f}s",
                "-H",
                f"Cookie: {cookie}",
                "-H",
                "HX-Request: true",
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        requests = int(re.search(r"(\d+) requests in", out).group(1))
        tool = "wrk 1 thread x 16 connections"
    else:

        async def hammer() -> int:
            done = 0
            deadline = time.monotonic() + seconds
            async with httpx.AsyncClient(timeout=30) as client:

                async def loop() -> None:
                    nonlocal done
                    while time.monotonic() < deadline:
                        await client.get(url, headers={"HX-Request": "true", "Cookie": cookie})
                        done += 1

                await asyncio.gather(*(loop() for _ in range(16)))
            return done

        requests = asyncio.run(hammer())
        tool = "httpx x 16"
    used = cpu_seconds(pids) - before
    return used / max(requests, 1), requests / seconds, tool


async def measure(server: LiveServer, args: argparse.Namespace, pids: list[int]) -> None:
    client = await sign_up(server.url)
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    transaction_ids = await make_attempts(
        server.env["RAILSERVE_DATABASE_URL"], client.email, args.streams
    )
    await client.aclose()

    opened_at = time.monotonic()
    watchers = await open_streams(server.port, cookie, transaction_ids)
    opening = time.monotonic() - opened_at
    print(f"opened {len(watchers)} streams in {opening:.1f} s (each got its card first)")

    await asyncio.sleep(2)
    before = cpu_seconds(pids)
    await asyncio.sleep(args.idle_seconds)
    idle_cpu = (cpu_seconds(pids) - before) / args.idle_seconds
    print(f"idle, {len(watchers)} streams open: server CPU {idle_cpu * 100:.1f}% of one core")

    before = cpu_seconds(pids)
    began = time.monotonic()
    result = await settle_at_rate(server, watchers, args.rate, args.load_seconds)
    load_cpu = (cpu_seconds(pids) - before) / (time.monotonic() - began)
    ok, sent = result["after_ok"], result["after_send"]
    print(
        f"settling {args.rate:.0f}/s for {args.load_seconds:.0f} s ({len(ok)} events, "
        f"{result['missed'][0]} missed): server CPU {load_cpu * 100:.1f}% of one core"
    )
    print(
        f"  webhook 200 -> event: p50 {statistics.median(ok) * 1000:.0f} ms, "
        f"p99 {percentile(ok, 0.99) * 1000:.0f} ms, max {max(ok) * 1000:.0f} ms"
    )
    print(
        f"  webhook sent -> event: p50 {statistics.median(sent) * 1000:.0f} ms, "
        f"p99 {percentile(sent, 0.99) * 1000:.0f} ms"
    )
    closed = sum(1 for w in watchers[: len(ok)] if any(n == "close" for n, _ in w.events))
    print(f"  streams told `close` after their final card: {closed}/{len(ok)}")

    for watcher in watchers:
        watcher.task.cancel()
    await asyncio.gather(*(w.task for w in watchers), return_exceptions=True)
    await asyncio.sleep(1)
    idle_txn = transaction_ids[-1]  # still pending
    per_poll, rps, tool = await asyncio.to_thread(
        poll_cost, server, pids, cookie, idle_txn, args.poll_seconds
    )
    estimate = per_poll * args.streams
    print(
        f"polling instead ({tool}, {args.poll_seconds:.0f} s): {rps:.0f} polls/s at full load, "
        f"{per_poll * 1000:.2f} ms CPU per poll -> {args.streams} watchers polling once a "
        f"second would need {estimate * 100:.0f}% of one core"
        + (" (more than the worker has: they would queue)" if estimate > 1 else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--load-seconds", type=float, default=15.0)
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument("--poll-seconds", type=float, default=5.0)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()

    wanted = args.streams * 2 + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    if args.database_url:
        database.BASE_URL = args.database_url
    factory = DatabaseFactory(Path(tempfile.mkdtemp()))
    url = factory.new_url()
    server = LiveServer(url, workers=1, gateway_delay="3600", sweep_interval="0")
    railserve(
        *("add-train", "--number", "P1", "--name", "Push", "--origin", "A"),
        *("--destination", "B", "--departs", "2030-01-01T00:00", "--seats", "100000"),
        *("--fare", "100"),
        env=server.env,
    )
    server.start()
    pids = session_pids(server.process.pid)
    pinned = (os.cpu_count() or 1) >= 2 and pin(pids, 1)
    if pinned:
        os.sched_setaffinity(0, {0})  # the load on the other core
    print(
        f"conditions: Python {platform.python_version()}, {os.cpu_count()} cores (shared), "
        f"database {url.split(':')[0]}, railserve serve --workers 1 (Hypercorn)"
        f"{', pinned to core 1, load on core 0' if pinned else ''}, {args.streams} streams, "
        f"settling {args.rate:.0f}/s by signed webhook, heartbeat 15 s, "
        f"open-files limit {resource.getrlimit(resource.RLIMIT_NOFILE)[0]}"
    )
    try:
        asyncio.run(measure(server, args, pids))
    finally:
        server.stop()
        factory.drop_all()


if __name__ == "__main__":
    main()
