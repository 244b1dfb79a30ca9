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
  worker's commits (`wake_pollers`, registered with `db.on_commit`), and every 50 ms
  while streams are open for what other workers commit.

Keys name what changed: a transaction id (`TXN…`) or a booking (`b:<id>`). Streams wait
on in-memory subscriptions, so an idle stream holds no database connection; one timer per
worker sends every stream its heartbeat, rather than one timer (and task) per stream.

Here: the keys and `announce` (what code that changes something calls). The worker's side
is in `hub` (its subscriptions, the listener or poller, the heartbeat timer), one stream's
interest in `subscription`, and the event stream a card is served by in `stream`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from tortoise.connection import get_connections

from railserve.payment.models import LiveChange

CHANNEL = "railserve_live"
KEEP_CHANGES = timedelta(minutes=5)  # SQLite: live_changes rows older than this go


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
