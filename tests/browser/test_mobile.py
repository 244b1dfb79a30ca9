"""A phone-sized viewport: the pay page and every status state fit without sideways scrolling."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.traveller import CARD_DECLINED

pytestmark = pytest.mark.browser
PHONE = {"width": 390, "height": 844}


def test_pay_page_and_status_states_fit_a_phone(traveller, train, screenshot):
    asha = traveller(viewport=PHONE).register("Asha Rao")
    page = asha.page
    asha.book(train, ["Asha Rao", "Vikram Rao"])
    assert not asha.overflows(), "pay page scrolls sideways"
    screenshot(page, "mobile-pay-page")

    asha.pay_by_card(CARD_DECLINED)
    expect(page.locator(".payment-status.state-pending")).to_be_visible()
    assert not asha.overflows(), "pending state scrolls sideways"
    screenshot(page, "mobile-pending")

    failed = page.locator(".payment-status.state-failed")
    expect(failed).to_be_visible()
    assert not asha.overflows(), "failed state scrolls sideways"
    screenshot(page, "mobile-failed")

    asha.pay_by_card()
    expect(page.locator(".payment-status.state-success")).to_be_visible()
    assert not asha.overflows(), "success state scrolls sideways"
    screenshot(page, "mobile-success")

    for path in ("/", "/profile"):
        page.goto(path)
        assert not asha.overflows(), f"{path} scrolls sideways"
    screenshot(page, "mobile-profile")
