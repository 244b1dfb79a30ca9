"""An operator in Chromium: finds a payment by PNR, reads its timeline, refunds half with
a reason, and the passenger's profile shows the refund."""

from __future__ import annotations

import re
import subprocess

import pytest
from playwright.sync_api import expect

from tests.support.server import RAILSERVE, ROOT

pytestmark = pytest.mark.browser


def make_operator(person, server) -> None:
    """Promote a registered traveller with `railserve add-operator`, as a deployer would."""
    done = subprocess.run(
        [str(RAILSERVE), "add-operator", "--email", person.email],
        env=server.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_operator_finds_a_payment_by_pnr_and_refunds_half(traveller, train, server, screenshot):
    asha = traveller().register("Asha Rao")
    asha.book(train)
    pnr = asha.page.locator(".trip-summary .pnr").inner_text()
    asha.pay_by_card()
    expect(asha.page.locator(".payment-status.state-success")).to_be_visible()
    transaction_id = asha.transaction_id()

    olga = traveller().register("Olga Operator")
    make_operator(olga, server)
    page = olga.page
    page.goto("/")
    page.get_by_role("link", name="Operations").click()
    expect(page.get_by_role("heading", name="Operations")).to_be_visible()
    page.get_by_role("navigation", name="Operations").get_by_role("link", name="Payments").click()

    page.evaluate("window.sameDocument = 'yes'")
    searches = []
    page.on(
        "request",
        lambda request: request.headers.get("hx-request") and searches.append(request.url),
    )
    page.get_by_label("Transaction id, PNR or e-mail").fill(pnr.lower())
    # Updated in place as the operator types, and the URL follows.
    expect(page).to_have_url(re.compile(r"/ops/payments\?q=" + pnr.lower()))
    results = page.locator("#payments-table tbody tr")
    expect(results).to_have_count(1)
    expect(page.locator("#payment-total")).to_have_text("1")
    assert page.evaluate("window.sameDocument") == "yes"
    screenshot(page, "ops-search")
    results.get_by_role("link", name=transaction_id).click()

    expect(page).to_have_url(re.compile(f"/ops/payments/{transaction_id}$"))
    # Leaving the search box for the link searches nothing again: a second
    # search pushing its URL would cancel the operator's navigation.
    assert len(searches) == 1, searches
    timeline = page.locator("#timeline")
    expect(timeline).to_contain_text("Succeeded")
    expect(timeline).to_contain_text("Gateway")
    expect(page.locator(".lifecycle .state.current")).to_have_attribute("data-state", "success")

    form = page.locator("#refund-form")
    form.get_by_label(re.compile("^Amount")).fill("625.00")
    form.get_by_label("Reason").fill("Goodwill: the train ran four hours late")
    form.get_by_role("button", name="Refund").click()
    expect(page.locator("#action-done")).to_contain_text("₹625.00")
    expect(page.locator("#detail-status")).to_have_text("Partly refunded")
    expect(page.locator("#refunds")).to_contain_text("Goodwill: the train ran four hours late")
    screenshot(page, "ops-refunded")

    page.get_by_role("link", name="Audit").click()
    expect(page.locator("#audit")).to_contain_text("Goodwill: the train ran four hours late")

    asha.page.goto("/profile")
    row = asha.page.locator(f"#payment-row-{transaction_id}")
    expect(row).to_contain_text("Partly refunded")
    expect(row).to_contain_text("₹625.00")
    expect(asha.page.locator(".refund")).to_contain_text("₹625.00")
    screenshot(asha.page, "ops-passenger-profile")

    # A picked filter searches at once, in place.
    page.goto(f"/ops/payments?q={pnr}")
    page.evaluate("window.sameDocument = 'yes'")
    page.get_by_label("Status").select_option(label="Failed")
    expect(page.locator("#payment-total")).to_have_text("0")
    expect(page).to_have_url(re.compile(r"status=failed"))
    page.get_by_label("Status").select_option(label="Partly refunded")
    expect(page.locator("#payment-total")).to_have_text("1")
    assert page.evaluate("window.sameDocument") == "yes"


def test_the_filters_work_as_a_plain_form_without_javascript(traveller, train, server):
    asha = traveller().register("Asha Rao")
    asha.book(train)
    pnr = asha.page.locator(".trip-summary .pnr").inner_text()
    asha.pay_by_card()
    expect(asha.page.locator(".payment-status.state-success")).to_be_visible()
    transaction_id = asha.transaction_id()

    olga = traveller(javascript=False).register("Olga Operator")
    make_operator(olga, server)
    page = olga.page
    page.goto("/ops/payments")
    page.get_by_label("Transaction id, PNR or e-mail").fill(pnr)
    page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(re.compile(f"/ops/payments\\?q={pnr}"))
    expect(page.locator("#payment-total")).to_have_text("1")
    page.get_by_role("link", name=transaction_id).click()
    expect(page.locator("#detail-pnr")).to_have_text(pnr)
    page.goto("/ops/payments?from=2026-13-01")
    expect(page.locator("#filter-error")).to_contain_text("ISO date")
    olga.errors[:] = [e for e in olga.errors if "422" not in e]
