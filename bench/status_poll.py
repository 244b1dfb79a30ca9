"""Benchmark the hottest request: the status poll (JSON and htmx partial).

Starts a real server (`railserve serve`) on a fresh database, signs up one passenger,
makes one finished payment and one pending attempt, then polls the status URL with
`--concurrency` clients for `--seconds`, and prints throughput and latency with the
conditions they were taken under.

    .venv/bin/python bench/status_poll.py                       # SQLite, 1 worker
    .venv/bin/python bench/status_poll.py --workers 2 --database-url postgres://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
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

from tests.support import database
from tests.support.database import DatabaseFactory
from tests.support.server import LiveServer, railserve


async def prepare(base: str) -> tuple[httpx.AsyncClient, dict[str, str]]:
    client = httpx.AsyncClient(base_url=base, timeout=30)
    page = (await client.get("/auth/register")).text
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    await client.post(
        "/auth/register",
        data={"csrf_token": token, "name": "Bench", "email": email, "password": "benchmark-pw"},
    )
    home = (await client.get("/")).text  # signing in starts a new session with a new token
    token = re.search(r'name="csrf-token" content="([^"]+)"', home).group(1)
    train_id = re.search(r'name="train_id" value="(\d+)"', home).group(1)
    txns = {}
    for label, card in (("final", "4242424242424242"), ("pending", "4242424242424242")):
        booking = await client.post(
            "/bookings", data={"csrf_token": token, "train_id": train_id, "passenger_name": "B"}
        )
        assert booking.status_code == 303, (booking.status_code, booking.text[-1500:])
        booking_id = booking.headers["location"].rsplit("/", 1)[-1]
        pay = (await client.get(f"/payment/pay/{booking_id}")).text
        key = re.search(r'name="idempotency_key" value="([^"]+)"', pay).group(1)
        started = await client.post(
            f"/payment/process/{booking_id}",
            data={
                "csrf_token": token,
                "idempotency_key": key,
                "amount": "100.00",
                "method": "credit_card",
                "card_number": card,
                "card_expiry": "12/39",
                "card_cvv": "123",
                "card_name": "Bench",
            },
        )
        txns[label] = started.headers["location"].rsplit("/", 1)[-1]
        if label == "final":  # the gateway never answers here: cancel it to make it final
            await client.post(f"/payment/cancel/{txns[label]}", data={"csrf_token": token})
    return client, txns


async def hammer(
    client: httpx.AsyncClient, path: str, headers: dict, concurrency: int, seconds: float
):
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            response = await client.get(path, headers=headers)
            latencies.append(time.perf_counter() - start)
            errors += response.status_code != 200

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p95_ms": latencies[int(len(latencies) * 0.95)] * 1000,
        "errors": errors,
    }


def wrk(url: str, headers: dict, cookies: str, args: argparse.Namespace) -> str:
    """Load from a second process (wrk, Debian's package), so the client is not the limit."""
    command = ["wrk", "-t", "1", "-c", str(args.concurrency), "-d", f"{args.seconds:.0f}s"]
    command += ["--latency", "-H", f"Cookie: {cookies}"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)
    p50 = re.search(r"50%\s+(\S+)", out).group(1)
    p99 = re.search(r"99%\s+(\S+)", out).group(1)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return f"{float(rps):8.0f} req/s  p50 {p50:>8}  p99 {p99:>8}  non-2xx {non2xx.group(1) if non2xx else 0}"


async def measure(server: LiveServer, url: str, args: argparse.Namespace) -> None:
    client, txns = await prepare(server.url)
    cookies = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    use_wrk = shutil.which("wrk") is not None
    print(
        f"conditions: Python {platform.python_version()} on {os.cpu_count()} cores, "
        f"database {url.split(':')[0]}, {args.server} with {args.workers} worker(s), "
        f"concurrency {args.concurrency}, {args.seconds:.0f} s per case, "
        f"load from {'wrk (1 thread)' if use_wrk else 'httpx in this process'}"
    )
    cases = (
        ("JSON, final", txns["final"], {"Accept": "application/json"}),
        ("htmx partial, pending", txns["pending"], {"HX-Request": "true"}),
        ("htmx partial, final", txns["final"], {"HX-Request": "true"}),
    )
    for label, txn, headers in cases:
        if use_wrk:
            path = f"{server.url}/payment/status/{txn}"
            print(f"{label:24} {wrk(path, headers, cookies, args)}")
            continue
        result = await hammer(
            client, f"/payment/status/{txn}", headers, args.concurrency, args.seconds
        )
        print(
            f"{label:24} {result['rps']:8.0f} req/s  p50 {result['p50_ms']:6.1f} ms  "
            f"p95 {result['p95_ms']:6.1f} ms  ({result['requests']} requests, "
            f"{result['errors']} errors)"
        )
    await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--server", default="hypercorn", choices=("hypercorn", "uvicorn"))
    args = parser.parse_args()
    if args.database_url:  # a server to make a throwaway database on
        database.BASE_URL = args.database_url
    factory = DatabaseFactory(Path(tempfile.mkdtemp()))
    url = factory.new_url()
    server = LiveServer(
        url, workers=args.workers, server=args.server, gateway_delay="3600", sweep_interval="0"
    )
    railserve(
        "add-train",
        "--number",
        "B1",
        "--name",
        "Bench",
        "--origin",
        "A",
        "--destination",
        "B",
        "--departs",
        "2030-01-01T00:00",
        "--seats",
        "100000",
        "--fare",
        "100",
        env=server.env,
    )
    server.start()
    try:
        asyncio.run(measure(server, url, args))
    finally:
        server.stop()
        factory.drop_all()


if __name__ == "__main__":
    main()
