"""A traveller in a real browser: one context (cookies, viewport, JavaScript on or off)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

from playwright.sync_api import Browser, Locator, Page, expect

PASSWORD = "correct-horse-battery"
CARD_OK = "4242 4242 4242 4242"
CARD_DECLINED = "4000 0000 0000 0002"
PAY_URL = re.compile(r"/payment/pay/(\d+)$")
STATUS_URL = re.compile(r"/payment/status/(TXN[A-Z0-9]{16})$")
AXE = Path(__file__).with_name("vendor") / "axe.min.js"


class Traveller:
    def __init__(
        self,
        browser: Browser,
        base_url: str,
        *,
        javascript: bool = True,
        viewport: dict[str, int] | None = None,
        bypass_csp: bool = False,
    ) -> None:
        self.base_url = base_url
        self.context = browser.new_context(
            base_url=base_url,
            java_script_enabled=javascript,
            viewport=viewport or {"width": 1280, "height": 900},
            bypass_csp=bypass_csp,
        )
        self.context.set_default_timeout(10_000)
        self.page: Page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on(
            "console",
            lambda message: (
                message.type == "error" and self.errors.append(f"{self.page.url}: {message.text}")
            ),
        )
        self.page.on("pageerror", lambda error: self.errors.append(f"{self.page.url}: {error}"))
        self.name = "Asha Rao"
        self.email = ""

    def close(self) -> None:
        self.context.close()

    def register(self, name: str = "Asha Rao") -> Traveller:
        """Create an account through the register form; it signs the traveller in."""
        self.name = name
        self.email = f"t-{uuid.uuid4().hex[:10]}@example.com"
        page = self.page
        page.goto("/auth/register")
        page.get_by_label("Name").fill(name)
        page.get_by_label("E-mail").fill(self.email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Register").click()
        expect(page).to_have_url(self.base_url + "/")
        return self

    def train(self, number: str) -> Locator:
        return self.page.locator(f"#train-{number}")

    def book(self, train_number: str, passengers: list[str] | None = None) -> int:
        """Book a train from the home page; return the booking id from the pay page's URL."""
        page = self.page
        names = passengers or [self.name]
        page.goto("/")
        train = self.train(train_number)
        for index, name in enumerate(names):
            if index:
                train.get_by_role("button", name="Add passenger").click()
            train.get_by_label(f"Passenger {index + 1} name").fill(name)
        train.get_by_role("button", name=re.compile(r"^Book")).click()
        expect(page).to_have_url(PAY_URL)
        return int(PAY_URL.search(page.url).group(1))

    def pay_form(self) -> Locator:
        return self.page.locator("form[data-pay-form]")

    def fill_card(self, number: str = CARD_OK, form: Locator | None = None) -> Locator:
        form = form or self.pay_form()
        form.get_by_label("Credit card").check()
        form.get_by_label("Card number").fill(number)
        form.get_by_label("Expiry").fill(f"12/{(datetime.now(UTC).year + 2) % 100:02d}")
        form.get_by_label("Security code").fill("123")
        form.get_by_label("Name on card").fill(self.name)
        return form

    def pay_by_card(self, number: str = CARD_OK) -> None:
        """Fill the (only) pay form on the page with a test card and press Pay."""
        form = self.fill_card(number)
        self.pay_button(form).click()

    def pay_button(self, form: Locator | None = None) -> Locator:
        return (form or self.pay_form()).get_by_role("button", name=re.compile(r"^Pay "))

    def status_panel(self) -> Locator:
        return self.page.locator(".payment-status")

    def transaction_id(self) -> str:
        element_id = self.status_panel().get_attribute("id") or ""
        assert re.fullmatch(r"payment-TXN[A-Z0-9]{16}", element_id), element_id
        return element_id.removeprefix("payment-")

    def overflows(self) -> bool:
        """Does the page scroll sideways? (It must not, even on a phone.)"""
        return self.page.evaluate("document.documentElement.scrollWidth > window.innerWidth")

    def axe_violations(self, impacts: tuple[str, ...] = ("serious", "critical")) -> list[dict]:
        """axe-core findings of the given impacts on the current page."""
        if not self.page.evaluate("typeof window.axe === 'object'"):
            self.page.add_script_tag(path=str(AXE))
        results = self.page.evaluate(
            """async () => {
                const r = await axe.run(document, {resultTypes: ['violations']});
                return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                    nodes: v.nodes.map(n => n.target.join(' ') + ' :: ' + n.failureSummary)}));
            }"""
        )
        return [v for v in results if v["impact"] in impacts]
