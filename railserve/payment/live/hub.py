"""The worker's side of live push: its streams' subscriptions, how it learns of changes.

One `Hub` per worker (the app's lifecycle starts and stops it): on PostgreSQL it LISTENs
on one dedicated connection; on SQLite one poller task reads `live_changes` while streams
are open (at once after each of this worker's commits, `wake_pollers`). One timer sends
every stream its heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import weakref
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

from railserve import db
from railserve.payment.live import CHANNEL
from railserve.payment.live.subscription import Subscription
from railserve.payment.models import LiveChange

log = logging.getLogger(__name__)

POLL_INTERVAL = 0.05  # SQLite, streams open: seconds between two reads of live_changes
IDLE_INTERVAL = 0.15  # SQLite, no stream open: seconds between two ticks (no query)
IDLE_CATCH_UP = 20  # SQLite, no stream open: read the newest change id every 20 ticks
RECONNECT_WAIT = 1.0  # PostgreSQL: first wait before listening again after a drop


# Hubs of this process whose SQLite poller runs (one per app): `wake_pollers` reaches them.
_pollers: weakref.WeakSet[Hub] = weakref.WeakSet()


def wake_pollers() -> None:
    """Called after each commit of this worker (`db.on_commit`): read its changes now.

    The commit is this worker's own, so its streams need not wait for the next poll.
    """
    for hub in _pollers:
        hub.poke()


class Hub:
    """The worker's subscriptions, the one task that learns of changes, the one heartbeat."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[Subscription]] = {}
        self._task: asyncio.Task | None = None
        self._listener = None  # asyncpg connection (PostgreSQL)
        self._stopping = False
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        # Heartbeats: (due, tie-breaker, interval, subscription), earliest first.
        self._beats: list[tuple[float, int, float, Subscription]] = []
        self._beat_order = itertools.count()
        self._beat_changed = asyncio.Event()
        self._beat_task: asyncio.Task | None = None

    # --- subscriptions ------------------------------------------------------------------
    def subscribe(self, keys: Iterable[str], heartbeat: float | None = None) -> Subscription:
        """Listen for `keys`; with `heartbeat`, also be told when a ping is due."""
        subscription = Subscription(tuple(keys))
        for key in subscription.keys:
            self._subscribers.setdefault(key, set()).add(subscription)
        if heartbeat:
            due = asyncio.get_running_loop().time() + heartbeat
            if not self._beats or due < self._beats[0][0]:
                self._beat_changed.set()
            heapq.heappush(self._beats, (due, next(self._beat_order), heartbeat, subscription))
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subscription.subscribed = False  # its heartbeat entry is dropped when it comes due
        for key in subscription.keys:
            watchers = self._subscribers.get(key)
            if watchers is not None:
                watchers.discard(subscription)
                if not watchers:
                    del self._subscribers[key]

    def subscriber_count(self) -> int:
        """How many streams wait on this worker (tests check nothing is left behind)."""
        return len({s for watchers in self._subscribers.values() for s in watchers})

    def publish(self, key: str) -> None:
        for subscription in self._subscribers.get(key, ()):
            subscription.notify()

    def wake_all(self) -> None:
        """Changes may have been missed (a listener reconnected): every stream re-reads."""
        for watchers in self._subscribers.values():
            for subscription in watchers:
                subscription.notify()

    def poke(self) -> None:
        """SQLite: this worker committed; if anyone watches, read the changes now."""
        if self._subscribers:
            self._wake.set()

    # --- heartbeats ---------------------------------------------------------------------
    async def _beat(self) -> None:
        """Tell each stream when its heartbeat is due: one timer for all of them."""
        loop = asyncio.get_running_loop()
        while True:
            self._beat_changed.clear()
            delay = self._beats[0][0] - loop.time() if self._beats else 3600.0
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._beat_changed.wait()
                continue
            now = loop.time()
            while self._beats and self._beats[0][0] <= now:
                due, order, interval, subscription = heapq.heappop(self._beats)
                if subscription.subscribed:
                    subscription.ping_due = True
                    subscription.signal()
                    # The next one counts from now: a stream the worker could not serve
                    # for a while gets one ping, not a burst.
                    heapq.heappush(
                        self._beats, (max(due + interval, now), order, interval, subscription)
                    )

    # --- learning of changes ------------------------------------------------------------
    async def start(self, database_url: str) -> None:
        self._stopping = False
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._beat_changed = asyncio.Event()
        self._beat_task = asyncio.create_task(self._beat(), name="railserve-live-heartbeat")
        if database_url.startswith(("postgres://", "postgresql://")):
            try:
                await self._listen(database_url)
            except Exception as error:  # serve anyway; streams catch up once it listens
                log.warning("live listener: cannot listen yet (%s)", error)
                self._reconnect_later(database_url)
        else:
            self._task = asyncio.create_task(self._poll_changes(), name="railserve-live-poll")
            _pollers.add(self)
            db.on_commit(wake_pollers)

    async def _stopped_within(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        self._stopping = True
        _pollers.discard(self)
        self._stop.set()
        self._wake.set()
        if self._beat_task is not None:
            self._beat_task.cancel()  # it only sets flags: nothing to interrupt halfway
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat_task
            self._beat_task = None
        self._beats.clear()
        if self._task is not None:
            # The poller ends at its next pause: cancelling it mid-query would leave
            # aiosqlite's thread answering a loop that may be closed by then.
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 5)
            except TimeoutError:
                self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._listener is not None:
            listener, self._listener = self._listener, None
            with contextlib.suppress(Exception):
                await listener.close(timeout=2)
        # Streams end rather than hold the server's shutdown open.
        for watchers in list(self._subscribers.values()):
            for subscription in watchers:
                subscription.closed = True
                subscription.signal()

    async def _pause(self) -> bool:
        """Until the next poll (sooner if this worker commits); True once stopping."""
        seconds = POLL_INTERVAL if self._subscribers else IDLE_INTERVAL
        if not self._wake.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self._wake.wait()
        self._wake.clear()
        return self._stopping

    async def _poll_changes(self) -> None:
        last = await _last_change_id()
        idle_ticks = 0
        while not await self._pause():
            if not self._subscribers:
                # Nobody watches: no read of the changes, only now and then of where they
                # stand, so that the first stream to come does not start far behind.
                idle_ticks += 1
                if idle_ticks % IDLE_CATCH_UP == 0:
                    with contextlib.suppress(Exception):
                        newest = await _last_change_id()
                        if not self._subscribers:  # a stream that came meanwhile needs them
                            last = max(last, newest)
                continue
            idle_ticks = 0
            try:
                rows = (
                    await LiveChange.filter(id__gt=last)
                    .order_by("id")
                    .values_list("id", "transaction_id")
                )
            except Exception:
                log.exception("reading live changes failed")
                continue
            for change_id, key in rows:
                last = max(last, change_id)
                self.publish(key)

    async def _listen(self, database_url: str) -> None:
        import asyncpg

        self._listener = await asyncpg.connect(_plain_dsn(database_url))
        await self._listener.add_listener(CHANNEL, self._on_notify)
        self._listener.add_termination_listener(
            lambda _connection: self._reconnect_later(database_url)
        )

    def _on_notify(self, _connection, _pid: int, _channel: str, payload: str) -> None:
        self.publish(payload)

    def _reconnect_later(self, database_url: str) -> None:
        if self._stopping:
            return
        self._listener = None
        self._task = asyncio.create_task(self._reconnect(database_url))

    async def _reconnect(self, database_url: str) -> None:
        wait = RECONNECT_WAIT
        while not self._stopping:
            try:
                await self._listen(database_url)
            except Exception as error:
                log.warning("live listener: reconnecting in %.0f s (%s)", wait, error)
                if await self._stopped_within(wait):
                    return
                wait = min(wait * 2, 30.0)
                continue
            self.wake_all()
            return


async def _last_change_id() -> int:
    newest = await LiveChange.all().order_by("-id").limit(1).values_list("id", flat=True)
    return int(newest[0]) if newest else 0


def _plain_dsn(database_url: str) -> str:
    """Tortoise's URL without its pool options (asyncpg would take them for settings)."""
    parts = urlsplit(database_url)
    scheme = "postgresql" if parts.scheme in ("postgres", "postgresql") else parts.scheme
    return urlunsplit(parts._replace(scheme=scheme, query=""))
