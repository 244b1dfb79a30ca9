"""Two providers in one running app, seen from Chromium: UPI through SimUPI, a card through
the simulated gateway; and the way forward after a failure, with a live hold countdown."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.traveller import CARD_DECLINED

pytestmark = pytest.mark.browser
JSON = {"Accept": "application/json"}


def gateway_of(traveller, transaction_id: str) -> dict:
    response = traveller.context.request.get(f"/payment/status/{transaction_id}", headers=JSON)
    return response.json()


def test_upi_goes_to_simupi_and_a_card_to_simulated(traveller, train, screenshot):
    asha = traveller().register("Asha Rao")
    asha.book(train)
    page = asha.page
    expect(page.locator(".trip-summary .total")).to_have_text("₹1,250.00")
    form = asha.pay_form()
    form.get_by_label("UPI", exact=True).check()
    form.get_by_label("UPI id").fill("success@upi")
    asha.pay_button(form).click()
    expect(page.locator(".payment-status.state-success")).to_be_visible()
    upi = asha.transaction_id()
    assert gateway_of(asha, upi)["gateway"] == "simupi"
    screenshot(page, "providers-upi-simupi")

    asha.book(train)
    asha.pay_by_card()
    expect(asha.page.locator(".payment-status.state-success")).to_be_visible()
    by_card = asha.transaction_id()
    assert gateway_of(asha, by_card)["gateway"] == "simulated"

    page.goto(f"/payment/receipt/{upi}")
    expect(page.locator(".receipt")).not_to_contain_text("simupi")  # a passenger's receipt
    page.goto("/profile")
    expect(page.locator(f"#payment-row-{upi} .gateway")).to_have_text("via simupi")
    expect(page.locator(f"#payment-row-{by_card} .gateway")).to_have_text("via simulated")
    expect(page.locator(f"#payment-row-{upi}")).to_contain_text("IST")


def test_a_failure_shows_what_to_do_and_the_hold_counts_down(traveller, train, screenshot):
    asha = traveller().register()
    asha.book(train)
    asha.pay_by_card(CARD_DECLINED)
    failed = asha.page.locator(".payment-status.state-failed")
    expect(failed.locator(".advice")).to_have_text(re.compile("another card or by UPI"))
    expect(failed.locator(".hold time")).to_have_text(re.compile(r"^\d\d:\d\d IST$"))
    left = failed.locator("[data-countdown-left]")
    expect(left).to_have_text(re.compile(r"^\(1[45]:\d\d left\)$"))
    first = left.inner_text()
    expect(left).not_to_have_text(first)  # it ticks
    failed.get_by_text("Need help?").click()
    expect(failed.locator(".support")).to_contain_text(asha.transaction_id())
    screenshot(asha.page, "providers-failure-advice")
    asha.page.get_by_role("link", name="Help", exact=True).click()
    expect(asha.page.locator("#charges")).to_contain_text("₹180.00")
