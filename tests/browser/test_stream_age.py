"""A stream lives RAILSERVE_STREAM_MAX_AGE seconds: the server ends it without `close`,
and the browser opens it again and is sent the current card, with no console error."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import start_server

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def short_lived_streams(database_factory):
    server = start_server(database_factory, stream_max_age="1.5")
    yield server
    server.stop()


@pytest.fixture
def server(short_lived_streams):
    return short_lived_streams


def test_the_browser_reopens_an_aged_stream_and_keeps_the_current_card(traveller, train):
    asha = traveller().register("Asha Rao")
    asha.book(train, ["Asha Rao"])
    page = asha.page
    opened: list[str] = []
    page.on("request", lambda r: opened.append(r.url) if "/payment/events/" in r.url else None)
    asha.pay_by_card()
    success = page.locator(".payment-status.state-success")
    expect(success).to_be_visible()
    path = f"/payment/events/{asha.transaction_id()}"
    assert success.get_attribute("sse-connect") == path  # a success card keeps listening
    seen = len(opened)
    deadline = time.monotonic() + 20
    while len(opened) < seen + 2 and time.monotonic() < deadline:
        page.wait_for_timeout(200)  # a bounded wait for the browser's own reconnects
    assert len(opened) >= seen + 2, opened  # ended by the server, opened again by the page
    assert all(url.endswith(path) for url in opened[seen:])
    expect(page.locator(".payment-status.state-success")).to_be_visible()
    expect(page.locator(".payment-status .seat-outcome")).to_have_text("Confirmed for Asha Rao")
