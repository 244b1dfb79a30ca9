"""Waiting on a condition, not on the clock: a busy machine may take seconds to get there."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

# Long enough for two cores shared by many processes; a condition that holds returns at once.
PATIENCE = 30.0


async def eventually(
    probe: Callable[[], Awaitable[T]],
    holds: Callable[[T], bool] = bool,
    timeout: float = PATIENCE,
    interval: float = 0.02,
) -> T:
    """Await `probe()` until `holds(value)`; return that value (the last one at the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if holds(value) or time.monotonic() >= deadline:
            return value
        await asyncio.sleep(interval)
