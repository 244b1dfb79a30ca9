"""Drive POSTs at a server over keep-alive HTTP/1.1 connections; print one JSON result.

Run pinned to its own core by bench/run.py:

    taskset -c 1 python bench/post_driver.py JOB.json

The job names the server, the concurrency, the duration and a file of requests (one JSON
object a line: path, body, cookie); each request is sent once, so every post can carry a
fresh booking and idempotency key. Latency is measured from the first byte sent to the
last byte of the answer. A written minimal client: httpx would cost this core more than
the server it measures.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status, headers.get("connection", "").lower() == "close"


async def run(job: dict, items: list[dict]) -> dict:
    requests = iter(items)
    host, port = job["host"], job["port"]
    deadline = time.perf_counter() + job["seconds"]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    expect = job["expect"]

    async def worker() -> None:
        nonlocal errors
        reader = writer = None
        while time.perf_counter() < deadline:
            item = next(requests, None)
            if item is None:
                break
            body = item["body"].encode()
            head = (
                f"POST {item['path']} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Cookie: {item['cookie']}\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            started = time.perf_counter()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                writer.write(head + body)
                status, closing = await read_response(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                errors += 1
                if writer is not None:
                    writer.close()
                reader = writer = None
                continue
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1
            errors += status != expect
            if closing:
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    started_at = time.monotonic()  # CLOCK_MONOTONIC: comparable with the caller's clock
    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(job["concurrency"])))
    elapsed = time.perf_counter() - began
    latencies.sort()
    n = len(latencies)
    return {
        "requests": n,
        "started_at": started_at,
        "elapsed": elapsed,
        "rps": n / elapsed if elapsed else 0.0,
        "p50_ms": statistics.median(latencies) * 1000 if n else 0.0,
        "p99_ms": latencies[min(n - 1, int(n * 0.99))] * 1000 if n else 0.0,
        "errors": errors,
        "statuses": statuses,
        "exhausted": next(requests, None) is None,
    }


def main() -> None:
    with open(sys.argv[1]) as file:
        job = json.load(file)
    with open(job["requests"]) as file:
        items = [json.loads(line) for line in file]
    print(json.dumps(asyncio.run(run(job, items))))


if __name__ == "__main__":
    main()
