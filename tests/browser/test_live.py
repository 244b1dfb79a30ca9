"""Live push in Chromium: the card learns the outcome from the event stream, and polls
only when the stream cannot be opened."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def watch_requests(page) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    page.on("request", lambda request: seen.append((request.resource_type, request.url)))
    return seen


def test_paying_shows_the_result_through_the_event_stream(traveller, train):
    asha = traveller().register()
    asha.book(train)
    page = asha.page
    requests = watch_requests(page)
    page.evaluate("window.sameDocument = 'yes'")

    asha.pay_by_card()
    pending = page.locator(".payment-status.state-pending")
    expect(pending).to_be_visible()
    transaction_id = asha.transaction_id()
    success = page.locator(f"#payment-{transaction_id}.state-success")
    expect(success).to_be_visible()
    expect(success.locator(".seat-outcome")).to_contain_text("Confirmed for")
    expect(page.locator("#announcer")).to_have_text("Payment successful. Your seats are confirmed.")

    streams = [url for kind, url in requests if url.endswith(f"/payment/events/{transaction_id}")]
    assert streams and all(kind == "eventsource" for kind, url in requests if url in streams)
    polls = [url for _, url in requests if f"/payment/status/{transaction_id}" in url]
    assert polls == []  # the stream brought the result: no fallback polling
    # Still listening: a refund or an operator's action would reach this card.
    assert success.get_attribute("sse-connect") == f"/payment/events/{transaction_id}"
    assert page.evaluate("window.sameDocument") == "yes"


def test_without_the_stream_the_card_polls_instead(traveller, train):
    asha = traveller().register()
    asha.book(train)
    page = asha.page
    # A proxy that refuses event streams: the card must still reach its outcome.
    page.route("**/payment/events/**", lambda route: route.abort())
    requests = watch_requests(page)

    asha.pay_by_card()
    transaction_id = asha.transaction_id()
    expect(page.locator(f"#payment-{transaction_id}.state-success")).to_be_visible()
    polls = [url for _, url in requests if url.endswith(f"/payment/status/{transaction_id}")]
    assert polls, "the fallback never polled"
    final = page.locator(f"#payment-{transaction_id}")
    assert final.get_attribute("hx-trigger") is None  # final: polling stopped
    # The refused stream is reported on the console once, by the browser (the failed load)
    # and by htmx (its sseError, logged as the EventSource's error event); nothing else.
    reported = sorted(error.split(": ", 1)[1] for error in asha.errors)
    assert reported == ["Failed to load resource: net::ERR_FAILED", "[object Event]"], reported
    asha.errors.clear()
