"""Notifications and the outbox: what the passenger is told, in-app and by mail.

Both rows are written inside the caller's transaction, with the change they announce.
Delivery by SMTP (when configured) happens later, outside any transaction.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

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


async def deliver_outbox(smtp_url: str, limit: int = 50) -> int:
    """Send undelivered mail through SMTP; returns how many were sent."""
    if not smtp_url:
        return 0
    import aiosmtplib

    parts = urlsplit(smtp_url)
    sent = 0
    for mail in await Mail.filter(delivered_at=None).order_by("id").limit(limit):
        message = EmailMessage()
        message["From"] = "RailServe <no-reply@railserve.invalid>"
        message["To"] = mail.to_address
        message["Subject"] = mail.subject
        message.set_content(mail.body)
        try:
            await aiosmtplib.send(
                message,
                hostname=parts.hostname or "127.0.0.1",
                port=parts.port or 25,
                username=unquote(parts.username) if parts.username else None,
                password=unquote(parts.password) if parts.password else None,
                use_tls=parts.scheme == "smtps",
                timeout=10,
            )
        except Exception as error:  # leave it in the outbox for the next sweep
            log.warning("mail %s not delivered: %s", mail.id, error)
            break
        claimed = await Mail.filter(id=mail.id, delivered_at=None).update(
            delivered_at=datetime.now(UTC)
        )
        sent += claimed
    return sent
