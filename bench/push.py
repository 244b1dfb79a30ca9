"""Benchmark live push: N event streams against one worker, payments settled at a steady rate.

Starts `railserve serve --workers 1` on a fresh database (pinned to one core when the
machine has two or more), makes N pending attempts for one passenger straight in the
database, opens one event stream per attempt from `--clients` client processes (each
holding a share, so that no single client process queues thousands of sockets), then:

1. idle: measures the server's CPU (and the clients') while the N streams wait;
2. load: settles attempts through the signed webhook at `--rate` per second and measures
   the time from sending the webhook to the stream's `status` event (the commit is in
   between: an upper bound of commit-to-event) and from the webhook's 200 to that event
   (negative when the event beat the 200 to the client), with the CPU meanwhile;
3. polling, for comparison: closes the streams and measures with wrk (or httpx) what one
   poll of the pending htmx partial costs in server CPU, then what N watchers polling once
   a second would cost.

    .venv/bin/python bench/push.py --streams 1000 [--clients 4] [--server hypercorn]
    .venv/bin/python bench/push.py --streams 5000 --database-url postgres://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
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


# --- event streams over raw sockets, in client processes of their own -------------------
# The streams are read by `--clients` processes, each holding a share: one process reading
# thousands of sockets would add its own queueing to the latency measured. Arrival times
# are CLOCK_MONOTONIC, which every process of the machine shares.
class Watcher:
    def __init__(self, transaction_id: str) -> None:
        self.transaction_id = transaction_id
        self.opened = asyncio.Event()
        self.events: list[tuple[str, float]] = []
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
                    if name == "status":
                        self.opened.set()
                    name = ""
        finally:
            writer.close()


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def hold_streams(pipe, port: int, cookie: str, transaction_ids: list[str]) -> None:
    """A client process: open its share of streams, then answer the parent's questions."""
    watchers = [Watcher(t) for t in transaction_ids]
    began = time.monotonic()
    for start in range(0, len(watchers), 100):  # in waves: no SYN flood on the listener
        batch = watchers[start : start + 100]
        for watcher in batch:
            watcher.task = asyncio.create_task(watcher.run(port, cookie))
        await asyncio.wait_for(asyncio.gather(*(w.opened.wait() for w in batch)), 120)
    pipe.send(("opened", time.monotonic() - began))
    loop = asyncio.get_running_loop()
    while True:
        command = await loop.run_in_executor(None, pipe.recv)
        if command == "cpu":
            pipe.send(client_cpu())
        elif command == "events":
            pipe.send({w.transaction_id: w.events for w in watchers})
        else:  # "stop"
            for watcher in watchers:
                watcher.task.cancel()
            await asyncio.gather(*(w.task for w in watchers), return_exceptions=True)
            pipe.send("stopped")
            return


def client_process(pipe, port: int, cookie: str, transaction_ids: list[str], core) -> None:
    if core is not None:
        os.sched_setaffinity(0, {core})
    asyncio.run(hold_streams(pipe, port, cookie, transaction_ids))


class Clients:
    """The client processes, each holding a share of the streams."""

    def __init__(self, count: int, port: int, cookie: str, transaction_ids: list[str], core):
        context = multiprocessing.get_context("spawn")
        self.pipes = []
        self.processes = []
        for share in range(count):
            parent, child = context.Pipe()
            process = context.Process(
                target=client_process,
                args=(child, port, cookie, transaction_ids[share::count], core),
                daemon=True,
            )
            process.start()
            self.pipes.append(parent)
            self.processes.append(process)

    def ask(self, command: str) -> list:
        for pipe in self.pipes:
            pipe.send(command)
        return [pipe.recv() for pipe in self.pipes]

    def opened(self) -> float:
        return max(pipe.recv()[1] for pipe in self.pipes)

    def cpu(self) -> float:
        return sum(self.ask("cpu"))

    def events(self) -> dict[str, list[tuple[str, float]]]:
        merged: dict[str, list[tuple[str, float]]] = {}
        for part in self.ask("events"):
            merged.update(part)
        return merged

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.ask("stop")
        for process in self.processes:
            process.join(10)
            if process.is_alive():
                process.kill()


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
    server: LiveServer, transaction_ids: list[str], rate: float, seconds: float
) -> dict[str, tuple[float, float]]:
    """Settle the first `rate * seconds` attempts; when each webhook was sent and answered."""
    from railserve.payment.signature import sign

    secret = server.env["RAILSERVE_WEBHOOK_SECRET"]
    times: dict[str, tuple[float, float]] = {}

    async def one(client: httpx.AsyncClient, transaction_id: str) -> None:
        body = webhook_body(transaction_id)
        headers = {"RailServe-Signature": sign(secret, body, int(time.time()))}
        sent = time.monotonic()
        reply = await client.post("/payment/webhook", content=body, headers=headers)
        times[transaction_id] = (sent, time.monotonic())
        assert reply.status_code == 200, reply.text

    count = int(rate * seconds)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        pending = []
        began = time.monotonic()
        for i, transaction_id in enumerate(transaction_ids[:count]):
            await asyncio.sleep(max(0.0, began + i / rate - time.monotonic()))
            pending.append(asyncio.create_task(one(client, transaction_id)))
        await asyncio.gather(*pending)
    return times


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


def worker_rss(pids: list[int]) -> float:
    """The largest resident set among the server's processes (the worker), in MiB."""
    largest = 0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    largest = max(largest, int(line.split()[1]))
    return largest / 1024


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


async def measure(server: LiveServer, args: argparse.Namespace, pids: list[int], core) -> None:
    client = await sign_up(server.url)
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    transaction_ids = await make_attempts(
        server.env["RAILSERVE_DATABASE_URL"], client.email, args.streams
    )
    await client.aclose()
    rss_before = worker_rss(pids)

    clients = Clients(args.clients, server.port, cookie, transaction_ids, core)
    try:
        opening = await asyncio.to_thread(clients.opened)
        print(
            f"opened {args.streams} streams in {opening:.1f} s from {args.clients} client "
            f"processes (each got its card first); worker RSS {rss_before:.0f} -> "
            f"{worker_rss(pids):.0f} MiB"
        )

        await asyncio.sleep(2)
        before, client_before = cpu_seconds(pids), await asyncio.to_thread(clients.cpu)
        await asyncio.sleep(args.idle_seconds)
        idle_cpu = (cpu_seconds(pids) - before) / args.idle_seconds
        idle_client = (await asyncio.to_thread(clients.cpu) - client_before) / args.idle_seconds
        print(
            f"idle, {args.streams} streams open: server CPU {idle_cpu * 100:.1f}% of one core, "
            f"clients {idle_client * 100:.1f}%"
        )

        before, client_before = cpu_seconds(pids), await asyncio.to_thread(clients.cpu)
        own_before = client_cpu()
        began = time.monotonic()
        times = await settle_at_rate(server, transaction_ids, args.rate, args.load_seconds)
        spent = time.monotonic() - began
        load_cpu = (cpu_seconds(pids) - before) / spent
        load_client = (await asyncio.to_thread(clients.cpu) - client_before) / spent
        webhook_client = (client_cpu() - own_before) / spent
        await asyncio.sleep(args.grace)
        events = await asyncio.to_thread(clients.events)
    finally:
        await asyncio.to_thread(clients.stop)

    after_ok, after_send, missed, closed = [], [], 0, 0
    for transaction_id, (sent, ok) in times.items():
        statuses = [t for name, t in events[transaction_id] if name == "status"]
        if len(statuses) < 2:
            missed += 1
            continue
        arrived = statuses[1]
        after_ok.append(arrived - ok)
        after_send.append(arrived - sent)
        closed += any(name == "close" for name, _ in events[transaction_id])
    print(
        f"settling {args.rate:.0f}/s for {args.load_seconds:.0f} s ({len(after_ok)} events, "
        f"{missed} missed): server CPU {load_cpu * 100:.1f}% of one core, stream clients "
        f"{load_client * 100:.1f}%, webhook client {webhook_client * 100:.1f}%"
    )
    early = sum(1 for value in after_ok if value < 0)
    print(
        f"  webhook sent -> event (an upper bound of commit -> event): "
        f"p50 {ms(statistics.median(after_send))}, p99 {ms(percentile(after_send, 0.99))}, "
        f"max {ms(max(after_send))}"
    )
    print(
        f"  webhook 200 -> event: p50 {ms(statistics.median(after_ok))}, "
        f"p99 {ms(percentile(after_ok, 0.99))}, max {ms(max(after_ok))} "
        f"({early} events arrived before the webhook's 200 reached the client: negative)"
    )
    print(f"  streams told `close` after their final card: {closed}/{len(after_ok)}")

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


def default_server() -> str:
    """What `railserve serve` runs when not told otherwise."""
    from railserve.cli import build_parser

    return build_parser().parse_args(["serve"]).server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--load-seconds", type=float, default=15.0)
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument("--poll-seconds", type=float, default=5.0)
    parser.add_argument("--grace", type=float, default=2.0, help="seconds for late events")
    parser.add_argument("--clients", type=int, default=4, help="processes reading the streams")
    parser.add_argument("--database-url", default="")
    parser.add_argument(
        "--server", choices=("granian", "hypercorn", "uvicorn"), default=default_server()
    )
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
    server.env["RAILSERVE_SERVER"] = args.server
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
        f"database {url.split(':')[0]}, railserve serve --workers 1 --server {args.server}"
        f"{', pinned to core 1, load on core 0' if pinned else ''}, {args.streams} streams "
        f"read by {args.clients} client processes, "
        f"settling {args.rate:.0f}/s by signed webhook, heartbeat 15 s, "
        f"open-files limit {resource.getrlimit(resource.RLIMIT_NOFILE)[0]}"
    )
    try:
        asyncio.run(measure(server, args, pids, 0 if pinned else None))
    finally:
        server.stop()
        factory.drop_all()


if __name__ == "__main__":
    main()
