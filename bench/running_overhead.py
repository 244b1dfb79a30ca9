"""What the per-request metrics and log line cost the status poll, measured in-process.

The app is driven through Quart's test client (no server, no network), the JSON status
poll of one attempt, in alternating blocks with `railserve.running`'s two request hooks in
place and taken out; the log goes to /dev/null in the JSON format. The difference per
request is the hooks' cost, with the machine's load mostly cancelled by the alternation.
Then the two hooks alone, called in one request context as many times (the poll's user
already read, as the status view has): the least noisy figure on a shared machine.
Both the wall-clock time and the process's CPU time (every thread: the log's writer thread
included) are reported; on a shared machine the CPU time is the steadier of the two.

    .venv/bin/python bench/running_overhead.py [--requests 2000] [--blocks 6]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


async def main(requests: int, blocks: int) -> None:
    from quart import Response
    from quart_auth import current_user

    from railserve import create_app, db, running
    from railserve.config import Settings
    from tests.support.passenger import JSON, Passenger, make_train

    folder = Path(tempfile.mkdtemp(prefix="railserve-overhead-"))
    url = f"sqlite://{folder / 'bench.sqlite3'}"
    await db.migrate(url)
    settings = Settings(
        database_url=url,
        secret_key="bench",
        webhook_secret="bench",
        simupi_webhook_secret="bench",
        gateway_delay=0.0,
        rate_limits=False,
        sweep_interval=0,
        log_format="json",
    ).finalised()
    app = create_app(settings)
    before = app.before_request_funcs[None]
    after = app.after_request_funcs[None]
    async with app.test_app():
        person = await Passenger.sign_up(app)
        data = await person.pay(await person.book(await make_train()))
        path = f"/payment/status/{data['transaction_id']}"

        # (main before the log thread had none: its lines were written as they came)
        flush_logs = getattr(running, "flush_logs", lambda: None)

        async def block() -> tuple[float, float]:
            flush_logs()
            started, cpu = time.perf_counter(), time.process_time()
            for _ in range(requests):
                response = await person.client.get(path, headers=JSON)
                assert response.status_code == 200
            flush_logs()  # the lines' writing is part of the cost
            wall = (time.perf_counter() - started) / requests * 1e6
            return wall, (time.process_time() - cpu) / requests * 1e6

        await block()  # warm
        with_hooks, without = [], []
        for turn in range(blocks):  # alternating which goes first
            for hooks in (True, False) if turn % 2 else (False, True):
                if not hooks:
                    before.remove(running.begin_request)
                    after.remove(running.end_request)
                (with_hooks if hooks else without).append(await block())
                if not hooks:
                    before.insert(0, running.begin_request)
                    after.append(running.end_request)

        async def hooks_alone() -> tuple[float, float, float]:
            async with app.test_request_context(path, method="GET", headers=JSON):
                await current_user.is_authenticated  # as the view has, in a poll
                response = Response("{}", mimetype="application/json")
                flush_logs()
                started, cpu = time.perf_counter(), time.process_time()
                loop_cpu = time.thread_time()
                for _ in range(requests):
                    await running.begin_request()
                    await running.end_request(response)
                loop_cpu = time.thread_time() - loop_cpu
                flush_logs()
            wall = (time.perf_counter() - started) / requests * 1e6
            cpu = (time.process_time() - cpu) / requests * 1e6
            return wall, cpu, loop_cpu / requests * 1e6

        alone = [await hooks_alone() for _ in range(blocks)]
    for index, kind in enumerate(("wall", "CPU")):
        on = statistics.median(pair[index] for pair in with_hooks)
        off = statistics.median(pair[index] for pair in without)
        print(
            f"status poll (JSON, in-process), {kind} time, median of {blocks} blocks of "
            f"{requests}: {off:.0f} µs without the hooks, {on:.0f} µs with them: "
            f"+{on - off:.1f} µs ({(on - off) / off * 100:+.1f} %); "
            f"load average {os.getloadavg()[0]:.1f}",
            file=sys.__stdout__,
        )
    wall, cpu, loop_cpu = (statistics.median(block[i] for block in alone) for i in range(3))
    print(
        f"the two hooks alone, median of {blocks} blocks of {requests}: {wall:.1f} µs wall, "
        f"{cpu:.1f} µs CPU a request (every thread), {loop_cpu:.1f} µs of it on the event "
        f"loop's thread",
        file=sys.__stdout__,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--blocks", type=int, default=6)
    args = parser.parse_args()
    with open(os.devnull, "w") as nowhere:  # the log lines are written, then dropped
        sys.stderr = nowhere
        asyncio.run(main(args.requests, args.blocks))
