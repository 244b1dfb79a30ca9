"""The commands that run the money path: sweep, cancel a train, check, reconcile.

Each works through the configured gateways (`_gateways`), their reports handled by this
process's webhook handler, as the app's own would be.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator

from railserve import config as config_module
from railserve.cli.common import fail, with_db


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

    return asyncio.run(with_db(work))


def cmd_cancel_train(args: argparse.Namespace) -> int:
    from railserve.bounds import REASON

    reason = args.reason.strip()
    if not REASON.fits(reason):
        fail(f"--reason must be {REASON.words} characters")

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
            fail(error.message)
        print(file=sys.stderr)
        print(report.summary())
        return 0

    return asyncio.run(with_db(work))


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

    return asyncio.run(with_db(work))


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

    return asyncio.run(with_db(work))
