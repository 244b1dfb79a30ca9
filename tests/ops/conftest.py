"""Operators, and attempts in known states for the console to show."""

from __future__ import annotations

import pytest

from railserve.models import Role, User
from tests.security.helpers import event, send_webhook
from tests.support.passenger import CARD_DECLINED, Passenger, card


async def make_operator(app) -> Passenger:
    """A signed-in operator (registered as a passenger, then promoted)."""
    person = await Passenger.sign_up(app, name="Olga Operator")
    await User.filter(id=person.user_id).update(role=Role.OPERATOR)
    await person.refresh_csrf("/ops")
    return person


@pytest.fixture
async def operator(app) -> Passenger:
    return await make_operator(app)


@pytest.fixture
async def paid(app, passenger, train) -> str:
    """A successful attempt of 1250.00 INR (the simulator settles it)."""
    data = await passenger.pay(await passenger.book(train))
    assert data["status"] == "success"
    return data["transaction_id"]


@pytest.fixture
async def failed(app, passenger, train) -> str:
    data = await passenger.pay(await passenger.book(train), card(CARD_DECLINED))
    assert data["status"] == "failed"
    return data["transaction_id"]


async def settle_by_webhook(app, transaction_id: str, kind: str = "payment.succeeded"):
    return await send_webhook(app, event(transaction_id, kind))
