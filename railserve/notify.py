"""Notifications and the outbox: what the passenger is told, in-app and by mail.

Both rows are written inside the caller's transaction, with the change they announce.
Delivery by SMTP (when configured) happens later, outside any transaction.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

from tortoise.expressions import Q

from railserve.models import Mail, Notification, User

log = logging.getLogger(__name__)


async def notify(
    user_id: int,
    booking_id: int | None,
    kind: str,
    message: str,
    *,
    subject: str,
    body: str,
    email: str | None = None,
) -> None:
    """Tell the user in the app and by mail (to `email`, looked up when not given)."""
    if email is None:
        email = (await User.get(id=user_id).only("id", "email")).email
    for row in notice_rows(user_id, booking_id, kind, message, subject, body, email):
        await row.save(force_create=True)


def notice_rows(
    user_id: int,
    booking_id: int | None,
    kind: str,
    message: str,
    subject: str,
    body: str,
    email: str,
) -> tuple[Notification, Mail]:
    """The two rows of one notice, unsaved (a batched transaction inserts them itself)."""
    return (
        Notification(user_id=user_id, booking_id=booking_id, kind=kind, message=message),
        Mail(user_id=user_id, booking_id=booking_id, to_address=email, subject=subject, body=body),
    )


# Delivery of the outbox. A sender claims a mail (a conditional update) before sending
# it, so two workers' sweeps never send it twice; a claim left by a sender that died is
# taken over after CLAIM_LEASE. A failure is counted on that mail alone: it is tried again
# after a growing delay, is failed after MAX_MAIL_ATTEMPTS, and never holds up the others.
MAX_MAIL_ATTEMPTS = 5
CLAIM_LEASE = timedelta(minutes=5)
RETRY_BASE = timedelta(seconds=30)


def retry_delay(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failure: 30 s, 1 min, 2 min, 4 min."""
    return RETRY_BASE * 2 ** (attempts - 1)


def _due(now: datetime) -> Q:
    return Q(next_attempt_at=None) | Q(next_attempt_at__lte=now)


def _unclaimed(now: datetime) -> Q:
    return Q(claimed_at=None) | Q(claimed_at__lt=now - CLAIM_LEASE)


async def deliver_outbox(smtp_url: str, limit: int = 50, now: datetime | None = None) -> int:
    """Send the mails due through SMTP, each claimed first; returns how many were sent."""
    if not smtp_url:
        return 0
    now = now or datetime.now(UTC)
    due = (
        await Mail.filter(_due(now), _unclaimed(now), delivered_at=None, failed_at=None)
        .order_by("id")
        .limit(limit)
    )
    sent = 0
    for mail in due:
        claimed = await Mail.filter(
            _unclaimed(now), id=mail.id, delivered_at=None, failed_at=None
        ).update(claimed_at=now)
        if not claimed:
            continue  # another sender has it
        try:
            await _send(smtp_url, mail)
        except Exception as error:
            await _failed_once(mail, now, error)
            continue
        sent += await Mail.filter(id=mail.id, claimed_at=now).update(
            delivered_at=datetime.now(UTC), claimed_at=None
        )
    return sent


async def _send(smtp_url: str, mail: Mail) -> None:
    import aiosmtplib

    parts = urlsplit(smtp_url)
    message = EmailMessage()
    message["From"] = "RailServe <no-reply@railserve.invalid>"
    message["To"] = mail.to_address
    message["Subject"] = mail.subject
    message.set_content(mail.body)
    await aiosmtplib.send(
        message,
        hostname=parts.hostname or "127.0.0.1",
        port=parts.port or 25,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        use_tls=parts.scheme == "smtps",
        timeout=10,
    )


async def _failed_once(mail: Mail, now: datetime, error: Exception) -> None:
    attempts = (mail.attempts or 0) + 1
    log.warning("mail %s not delivered (attempt %s): %s", mail.id, attempts, error)
    changes: dict = {"attempts": attempts, "claimed_at": None, "last_error": str(error)[:300]}
    if attempts >= MAX_MAIL_ATTEMPTS:
        changes["failed_at"] = now
    else:
        changes["next_attempt_at"] = now + retry_delay(attempts)
    await Mail.filter(id=mail.id, claimed_at=now).update(**changes)
