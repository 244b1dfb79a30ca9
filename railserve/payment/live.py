"""Change notices for the live status stream, across workers and hosts.

A change is announced inside the transaction that makes it, so it is seen exactly when
(and only if) that transaction commits. Database triggers do it for every change of a
payment's status or refunded amount, a refund's status or a booking's status (migration
0003); `announce` is there for anything else:
- PostgreSQL: `pg_notify('railserve_live', key)`, delivered on commit to every worker,
  each of which LISTENs on one dedicated connection (a pooled one would UNLISTEN when it
  goes back to its pool).
- SQLite (one host, several workers): a `LiveChange` row; one poller task per worker reads
  the new rows and wakes that worker's streams — one query per worker, whatever the number
  of streams, and none while nobody watches. It reads at once after each of its own
  worker's commits (`db.committed` calls `wake_pollers`), and every 50 ms while streams are
  open for what other workers commit.

Keys name what changed: a transaction id (`TXN…`) or a booking (`b:<id>`). Streams wait
on in-memory subscriptions, so an idle stream holds no database connection; one timer per
worker sends every stream its heartbeat, rather than one timer (and task) per stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import itertools
import logging
import re
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

from tortoise.connection import get_connections

from railserve import running
from railserve.payment.models import LiveChange, PaymentStatus

log = logging.getLogger(__name__)

CHANNEL = "railserve_live"
POLL_INTERVAL = 0.05  # SQLite, streams open: seconds between two reads of live_changes
IDLE_INTERVAL = 0.15  # SQLite, no stream open: seconds between two ticks (no query)
HEARTBEAT = 15.0  # seconds between two `: ping` comments on an idle stream
MAX_AGE = 600.0  # seconds a stream lives (RAILSERVE_STREAM_MAX_AGE)
IDLE_CATCH_UP = 20  # SQLite, no stream open: read the newest change id every 20 ticks
RECONNECT_WAIT = 1.0  # PostgreSQL: first wait before listening again after a drop
KEEP_CHANGES = timedelta(minutes=5)  # SQLite: live_changes rows older than this go


FINAL_PAYMENT = (PaymentStatus.FAILED, PaymentStatus.CANCELLED, PaymentStatus.REFUNDED)


def card_is_final(payment_status: PaymentStatus, refund_open: bool = False) -> bool:
    """Whether nothing can change this attempt's card any more (its stream sends `close`).

    Failed, cancelled and refunded attempts are over (a retry is a new attempt with a card
    of its own), once none of their refunds is still pending or failed (an operator may
    retry a failed one or settle it offline). A successful attempt's card is never over:
    a refund, an operator's action or a promotion from the waitlist can still change it,
    so its stream stays open (until RAILSERVE_STREAM_MAX_AGE).
    """
    return payment_status in FINAL_PAYMENT and not refund_open


def transaction_key(transaction_id: str) -> str:
    return transaction_id


def booking_key(booking_id: int) -> str:
    return f"b:{booking_id}"


async def announce(*, transaction_id: str | None = None, booking_id: int | None = None) -> None:
    """Tell every worker's streams that this attempt or booking changed.

    Call inside the transaction that makes the change: the notice is delivered when it
    commits, and never if it rolls back. The usual changes need no call: triggers
    (migration 0003) write the notice whenever a payment's status or refunded amount, a
    refund's status or a booking's status changes, whoever writes it. This is for any
    other change a card shows.
    """
    keys = []
    if transaction_id:
        keys.append(transaction_key(transaction_id))
    if booking_id:
        keys.append(booking_key(booking_id))
    connection = get_connections().get("default")
    for key in keys:
        if connection.capabilities.dialect == "postgres":
            await connection.execute_query("SELECT pg_notify($1, $2)", [CHANNEL, key])
        else:
            await LiveChange.create(transaction_id=key)


async def forget_old_changes(now: datetime) -> int:
    """Delete SQLite change rows nobody can still be waiting for (the sweep calls this)."""
    return await LiveChange.filter(created_at__lt=now - KEEP_CHANGES).delete()


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


# Hubs of this process whose SQLite poller runs (one per app): `wake_pollers` reaches them.
_pollers: weakref.WeakSet[Hub] = weakref.WeakSet()


def wake_pollers() -> None:
    """`db.committed` calls this after each commit of this worker: read its changes now.

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


# --- the event stream -------------------------------------------------------------------

Render = Callable[[], Awaitable[tuple[str, bool]]]
LINE_BREAK = re.compile(r"\r\n|\r|\n")
PING = b": ping\n\n"


def event(name: str, data: str) -> bytes:
    """One server-sent event; multi-line data as several `data:` lines."""
    # The stream's own line breaks only (str.splitlines would also cut at U+2028 and such).
    lines = [f"event: {name}"] + [f"data: {line}" for line in LINE_BREAK.split(data)]
    return ("\n".join(lines) + "\n\n").encode()


async def stream(
    hub: Hub,
    keys: Iterable[str],
    render: Render,
    heartbeat: float = HEARTBEAT,
    max_age: float = MAX_AGE,
) -> AsyncIterator[bytes]:
    """The current card at once, again after each change, `close` once it is final.

    Subscribed before the first render, so a change committed meanwhile is not missed.
    A client that goes away cancels this generator; `finally` forgets the subscription.
    After `max_age` seconds the stream ends without `close`, saying `reconnect` first: the
    browser opens it again and is sent the current card (no stream is held forever).
    """
    subscription = hub.subscribe(keys, heartbeat)
    aged: list[bool] = []

    def expire() -> None:
        aged.append(True)
        subscription.signal()

    # One timer per stream for its whole life, not one per wait.
    old_age = asyncio.get_running_loop().call_later(max_age, expire)
    running.stream_opened()
    try:
        shown = None  # a digest of the card last sent: thousands of streams keep no copies
        while True:
            # Shielded: a hang-up must not cut a query short halfway.
            html, final = await asyncio.shield(render())
            digest = hashlib.blake2b(html.encode(), digest_size=16).digest()
            if digest != shown:
                shown = digest
                yield event("status", html)
            del html  # not kept while the stream waits
            if final:
                yield event("close", "final")
                return
            while True:
                await subscription.signalled()
                if aged:  # not `close`: the card may still change; come back for it
                    yield event("reconnect", "max-age")
                    return
                if subscription.closed:
                    return
                if subscription.ping_due:
                    subscription.ping_due = False
                    yield PING
                if subscription.dirty:
                    subscription.dirty = False
                    break
    finally:
        old_age.cancel()
        running.stream_closed()
        hub.unsubscribe(subscription)
