"""One stream's interest in some keys: what its worker's hub signals it with."""

from __future__ import annotations

import asyncio


class Subscription:
    """One stream's interest in some keys, and whether a change or a heartbeat is due.

    `dirty` says a key changed, `ping_due` that the worker's heartbeat timer came by,
    `closed` that the hub is stopping; `signal` wakes the stream for any of them. Kept
    small (slots, a future only while the stream waits): a worker holds thousands.
    """

    __slots__ = ("_signalled", "_waiter", "closed", "dirty", "keys", "ping_due", "subscribed")

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.keys = keys
        self.dirty = False
        self.ping_due = False
        self.closed = False
        self.subscribed = True
        self._signalled = False
        self._waiter: asyncio.Future | None = None

    def signal(self) -> None:
        self._signalled = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def notify(self) -> None:
        self.dirty = True
        self.signal()

    def clear(self) -> None:
        self._signalled = self.dirty = False

    async def signalled(self) -> None:
        """Until `signal` (at once if it came meanwhile); then ready for the next one."""
        if not self._signalled:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        self._signalled = False

    async def wait(self, timeout: float) -> bool:
        """True when something changed (or the hub closed), False after `timeout`."""
        try:
            async with asyncio.timeout(timeout):
                await self.signalled()
        except TimeoutError:
            return False
        self.dirty = False
        return True
