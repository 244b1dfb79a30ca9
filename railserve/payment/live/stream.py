"""The event stream a status card is served by: the card, again after each change, `close`."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

from railserve import running
from railserve.payment.live.hub import Hub
from railserve.payment.models import PaymentStatus

HEARTBEAT = 15.0  # seconds between two `: ping` comments on an idle stream
MAX_AGE = 600.0  # seconds a stream lives (RAILSERVE_STREAM_MAX_AGE)


def card_is_final(payment_status: PaymentStatus, refund_open: bool = False) -> bool:
    """Whether nothing can change this attempt's card any more (its stream sends `close`).

    Failed, cancelled and refunded attempts are over (a retry is a new attempt with a card
    of its own), once none of their refunds is still pending or failed (an operator may
    retry a failed one or settle it offline). A successful attempt's card is never over:
    a refund, an operator's action or a promotion from the waitlist can still change it,
    so its stream stays open (until RAILSERVE_STREAM_MAX_AGE).
    """
    return payment_status in PaymentStatus.FINAL and not refund_open


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
