"""The whole flow with JavaScript off: plain form posts, 303 redirects, a self-refreshing page."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.traveller import PAY_URL, STATUS_URL

pytestmark = pytest.mark.browser


def test_book_and_pay_without_javascript(traveller, train, screenshot):
    asha = traveller(javascript=False).register("Asha Rao")
    page = asha.page
    redirects: list[tuple[str, int, str]] = []
    page.on(
        "response",
        lambda response: (
            response.request.method == "POST"
            and redirects.append(
                (response.url, response.status, response.headers.get("location", ""))
            )
        ),
    )
    status_loads: list[str] = []
    page.on(
        "framenavigated",
        lambda frame: (
            frame == page.main_frame
            and STATUS_URL.search(frame.url)
            and status_loads.append(frame.url)
        ),
    )

    booking_id = asha.book(train)
    assert redirects[-1][1:] == (303, f"/payment/pay/{booking_id}")
    # Without JavaScript every method's fields are on the page, each saying when it applies.
    form = asha.pay_form()
    expect(form.get_by_label("UPI id")).to_be_visible()
    expect(form.get_by_label("Card number")).to_be_visible()
    screenshot(page, "nojs-pay-page")

    asha.pay_by_card()

    expect(page).to_have_url(STATUS_URL)
    transaction_id = STATUS_URL.search(page.url).group(1)
    assert redirects[-1][1:] == (303, f"/payment/status/{transaction_id}")
    pending = page.locator(f"#payment-{transaction_id}.state-pending")
    expect(pending).to_be_visible()
    expect(pending.locator("progress")).to_be_visible()
    expect(page.locator("noscript")).to_have_count(1)  # its <meta http-equiv=refresh>
    screenshot(page, "nojs-pending")

    success = page.locator(f"#payment-{transaction_id}.state-success")
    expect(success).to_be_visible(timeout=15_000)
    assert len(status_loads) >= 2, status_loads  # the page reloaded itself until final
    expect(page.locator("noscript")).to_have_count(0)  # final: no more refreshing
    expect(success.locator(".seat-outcome")).to_have_text(f"Confirmed for {asha.name}")
    screenshot(page, "nojs-success")

    success.get_by_role("link", name="Go to my trips").click()
    expect(page).to_have_url(re.compile(r"/profile$"))
    expect(page.locator(f"#payment-row-{transaction_id}")).to_contain_text("Successful")
    page.goto(f"/payment/pay/{booking_id}")  # already paid: the profile says so
    expect(page).to_have_url(re.compile(r"/profile$"))
    expect(page.locator(".flash")).to_contain_text("already paid")
    assert not PAY_URL.search(page.url)
