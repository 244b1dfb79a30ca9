"""Paying in parts in Chromium: choose the deposit, pay it, see the balance on the
profile, pay the balance from its link, and get the receipt of part 2 of 2."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import add_train

pytestmark = pytest.mark.browser


def test_deposit_then_balance_from_the_profile(traveller, server, screenshot):
    train = add_train(server, fare="1250.50")  # two passengers: ₹2,501.00
    asha = traveller().register("Asha Rao")
    asha.book(train, ["Asha Rao", "Vikram Rao"])
    page = asha.page
    expect(page.locator('input[type="radio"][name="plan"][value="full"]')).to_be_checked()
    expect(asha.pay_form().locator('[name="amount"]')).to_have_value("2501.00")
    page.evaluate("window.sameDocument = 'yes'")

    page.get_by_label("Deposit now, balance later").check()
    expect(asha.pay_form().locator('[name="amount"]')).to_have_value("625.25")
    expect(asha.pay_button()).to_have_text("Pay ₹625.25")
    assert page.evaluate("window.sameDocument") == "yes"  # re-rendered in place by htmx
    screenshot(page, "parts-deposit-chosen")
    asha.pay_by_card()
    expect(page.locator(".payment-status.state-success")).to_be_visible()

    page.goto("/profile")
    balance = page.locator(".balance-due")
    expect(balance).to_contain_text(re.compile(r"Balance ₹1,875\.75 due by "))
    screenshot(page, "parts-profile-balance")
    balance.get_by_role("link", name="Pay ₹1,875.75").click()
    expect(asha.pay_form().locator('[name="amount"]')).to_have_value("1875.75")
    expect(page.locator(".part-due")).to_contain_text("Part 2 of 2")
    asha.pay_by_card()
    success = page.locator(".payment-status.state-success")
    expect(success).to_be_visible()
    success.get_by_role("link", name="View receipt").click()
    expect(page.locator(".receipt .part")).to_contain_text("Part 2 of 2")
    expect(page.locator(".receipt .remaining")).to_contain_text("paid in full")
    page.goto("/profile")
    expect(page.locator(".balance-due")).to_have_count(0)


def test_the_pages_of_paying_in_parts_pass_axe(traveller, server, screenshot):
    from tests.browser.test_ops import make_operator

    train = add_train(server, fare="1250.50")
    asha = traveller(bypass_csp=True).register("Asha Rao")
    asha.book(train, ["Asha Rao", "Vikram Rao"])
    page = asha.page

    def accessible(person, name: str) -> None:
        screenshot(person.page, f"a11y-{name.replace(' ', '-')}")
        found = person.axe_violations()
        assert not found, f"{name}: {found}"

    accessible(asha, "pay page with plans")
    page.get_by_label("Deposit now, balance later").check()
    expect(asha.pay_form().locator('[name="amount"]')).to_have_value("625.25")
    accessible(asha, "pay page deposit chosen")
    asha.pay_by_card()
    success = page.locator(".payment-status.state-success")
    expect(success).to_be_visible()
    transaction_id = asha.transaction_id()
    success.get_by_role("link", name="View receipt").click()
    expect(page.locator(".receipt .part")).to_be_visible()
    accessible(asha, "receipt of a part")
    page.goto("/profile")
    accessible(asha, "profile with a balance")
    page.locator(".balance-due").get_by_role("link").click()
    expect(page.locator(".part-due")).to_be_visible()
    accessible(asha, "pay page of the balance")
    page.goto("/help")
    accessible(asha, "help with plans")

    olga = traveller(bypass_csp=True).register("Olga Operator")
    make_operator(olga, server)
    for name, path in (
        ("ops parts", "/ops/parts?hours=100000"),
        ("ops parts none", "/ops/parts"),
        ("ops payment detail with parts", f"/ops/payments/{transaction_id}"),
    ):
        olga.page.goto(path)
        accessible(olga, name)


def test_choosing_a_plan_without_javascript(traveller, server):
    train = add_train(server, fare="2000.00")
    asha = traveller(javascript=False).register("Asha Rao")
    asha.book(train)  # one passenger: the form's "Add passenger" needs JavaScript
    page = asha.page
    page.get_by_label("Deposit now, balance later").check()
    page.get_by_role("button", name="Show this plan").click()
    expect(page).to_have_url(re.compile(r"\?plan=deposit$"))
    expect(asha.pay_form().locator('[name="amount"]')).to_have_value("500.00")
    expect(asha.pay_form().locator('input[type="hidden"][name="plan"]')).to_have_value("deposit")
