"""Mail delivery: the outbox always, SMTP when RAILSERVE_SMTP_URL is set."""

import asyncio
import contextlib
import os
import socket
from asyncio.subprocess import PIPE
from datetime import UTC, datetime, timedelta

import pytest
from aiosmtpd.controller import Controller

from railserve.models import Mail
from railserve.notify import MAX_MAIL_ATTEMPTS, deliver_outbox
from railserve.ops import dashboard
from tests.support.passenger import Passenger, make_train
from tests.support.server import RAILSERVE, ROOT


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], str]] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(
            (envelope.mail_from, list(envelope.rcpt_tos), envelope.content.decode())
        )
        return "250 OK"


@pytest.fixture
def smtp_server():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, f"smtp://127.0.0.1:{port}"
    controller.stop()


async def test_outbox_is_delivered_by_smtp_once(app_with, settings, smtp_server):
    inbox, url = smtp_server
    async with app_with(settings, smtp_url=url) as app:
        person = await Passenger.sign_up(app)
        await person.pay(await person.book(await make_train()))
        assert await deliver_outbox(url) == 1
        assert await deliver_outbox(url) == 0
    _sender, recipients, content = inbox.messages[0]
    assert recipients == [person.email]
    assert "confirmed" in content
    assert len(inbox.messages) == 1


async def test_without_smtp_mail_stays_in_the_outbox(passenger, train):
    await passenger.pay(await passenger.book(train))
    assert await deliver_outbox("") == 0
    mail = await Mail.get(user_id=passenger.user_id)
    assert mail.delivered_at is None
    assert mail.subject in await passenger.text("/profile")


async def test_unreachable_smtp_leaves_mail_for_the_next_sweep(passenger, train):
    await passenger.pay(await passenger.book(train))
    assert await deliver_outbox("smtp://127.0.0.1:9") == 0
    assert await Mail.filter(delivered_at=None).count() == 1


class PickyInbox(Inbox):
    """Refuses some recipients (550), or everyone for a while (451), slowly enough that
    two senders overlap."""

    def __init__(self, refuse: str = "", refuse_all: bool = False, pause: float = 0.0) -> None:
        super().__init__()
        self.refuse, self.refuse_all, self.pause = refuse, refuse_all, pause

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse_all:
            return "451 4.3.0 try again later"
        if self.refuse and address.startswith(self.refuse):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(self.pause)
        return await super().handle_DATA(server, session, envelope)


@contextlib.contextmanager
def smtp(inbox: Inbox):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield f"smtp://127.0.0.1:{port}"
    finally:
        controller.stop()


async def outbox(user_id: int, *addresses: str) -> list[Mail]:
    return [
        await Mail.create(
            user_id=user_id, to_address=address, subject=f"Mail {i}", body=f"Body {i}"
        )
        for i, address in enumerate(addresses)
    ]


async def test_a_failing_mail_holds_up_nothing_and_is_retried_later_then_failed(passenger):
    bad, *good = await outbox(
        passenger.user_id, "bounce@example.com", "one@example.com", "two@example.com"
    )
    inbox = PickyInbox(refuse="bounce@")
    now = datetime.now(UTC)
    with smtp(inbox) as url:
        assert await deliver_outbox(url, now=now) == 2  # the mails behind it went out
        assert sorted(to for _, (to,), _ in inbox.messages) == [
            good[0].to_address,
            good[1].to_address,
        ]
        waits = []
        for attempt in range(1, MAX_MAIL_ATTEMPTS + 1):
            mail = await Mail.get(id=bad.id)
            assert (mail.attempts, mail.delivered_at) == (attempt, None)
            assert "no such mailbox" in mail.last_error
            if attempt == MAX_MAIL_ATTEMPTS:
                break
            waits.append(mail.next_attempt_at - now)
            assert await deliver_outbox(url, now=mail.next_attempt_at - timedelta(seconds=1)) == 0
            assert (await Mail.get(id=bad.id)).attempts == attempt  # not due yet: untouched
            now = mail.next_attempt_at
            assert await deliver_outbox(url, now=now) == 0
    assert waits == sorted(waits) and waits[0] < waits[-1], waits  # a growing delay
    failed = await Mail.get(id=bad.id)
    assert failed.failed_at is not None and failed.next_attempt_at is not None
    assert len(inbox.messages) == 2
    figures = await dashboard.figures(datetime.now(UTC), timedelta(minutes=5))
    assert figures.mails_failed == 1
    assert any(f"Mail {bad.id} to bounce@example.com failed" in a.what for a in figures.attention)


async def test_a_server_refusing_everything_counts_a_failure_on_every_mail(passenger):
    mails = await outbox(passenger.user_id, "a@example.com", "b@example.com", "c@example.com")
    with smtp(PickyInbox(refuse_all=True)) as url:
        assert await deliver_outbox(url) == 0
    for mail in mails:  # each was tried: none waited behind the first failure
        fresh = await Mail.get(id=mail.id)
        assert (fresh.attempts, fresh.delivered_at, fresh.claimed_at) == (1, None, None)


@pytest.mark.server
async def test_two_sweeps_in_two_processes_at_once_send_each_mail_once(
    passenger, database_url, settings
):
    count = 40
    await outbox(passenger.user_id, *(f"p{i}@example.com" for i in range(count)))
    inbox = PickyInbox(pause=0.02)
    with smtp(inbox) as url:
        env = {
            **os.environ,
            "RAILSERVE_DATABASE_URL": database_url,
            "RAILSERVE_ENV": "development",
            "RAILSERVE_WEBHOOK_SECRET": settings.webhook_secret,
            "RAILSERVE_SMTP_URL": url,
        }
        sweeps = [
            await asyncio.create_subprocess_exec(
                str(RAILSERVE), "sweep", env=env, cwd=ROOT, stdout=PIPE, stderr=PIPE
            )
            for _ in range(2)
        ]
        outputs = await asyncio.wait_for(asyncio.gather(*(s.communicate() for s in sweeps)), 120)
    assert [s.returncode for s in sweeps] == [0, 0], outputs
    recipients = [to for _, (to,), _ in inbox.messages]
    assert sorted(recipients) == sorted(f"p{i}@example.com" for i in range(count))
    assert not await Mail.filter(delivered_at=None).exists()
