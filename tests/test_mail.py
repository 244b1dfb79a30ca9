"""Mail delivery: the outbox always, SMTP when RAILSERVE_SMTP_URL is set."""

import socket

import pytest
from aiosmtpd.controller import Controller

from railserve.models import Mail
from railserve.notify import deliver_outbox
from tests.support.passenger import Passenger, make_train


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
