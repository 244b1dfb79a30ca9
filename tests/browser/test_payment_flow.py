"""Book and pay in Chromium with JavaScript on: the status changes in place, never by reload."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import add_train
from tests.browser.traveller import CARD_DECLINED, PAY_URL

pytestmark = pytest.mark.browser
TXN = re.compile(r"TXN[A-Z0-9]{16}")


def test_pay_by_card_shows_progress_then_success_in_the_same_document(traveller, train, screenshot):
    asha = traveller().register("Asha Rao")
    asha.book(train, ["Asha Rao", "Vikram Rao"])
    page = asha.page
    pnr = page.locator(".trip-summary .pnr").inner_text()
    expect(page.locator(".trip-summary .total")).to_have_text("₹2,500.00")
    screenshot(page, "desktop-pay-page")
    page.evaluate("window.sameDocument = 'yes'")  # gone if the browser navigates

    asha.pay_by_card()

    # The pending card, held as the node it was: on a busy machine the success card may
    # replace it before a second look, and a replaced node keeps what it showed.
    pending = page.wait_for_selector(".payment-status.state-pending", state="visible")
    assert pending.query_selector("progress") is not None
    assert "Processing your payment" in pending.inner_text()
    assert pending.get_attribute("sse-connect") == f"/payment/events/{asha.transaction_id()}"
    screenshot(page, "desktop-pending")

    success = page.locator(".payment-status.state-success")
    expect(success).to_be_visible()
    assert success.get_attribute("hx-trigger") is None  # final: polling stopped
    # The stream stays open: a refund or an operator's action still reaches this card.
    assert success.get_attribute("sse-connect") == f"/payment/events/{asha.transaction_id()}"
    assert page.evaluate("window.sameDocument") == "yes"
    expect(page).to_have_url(PAY_URL)
    expect(success.locator(".pnr")).to_have_text(pnr)
    expect(success.locator(".seat-outcome")).to_have_text("Confirmed for Asha Rao, Vikram Rao")
    expect(success.locator("code")).to_have_text(TXN)
    transaction_id = asha.transaction_id()
    # Screen readers hear the outcome; keyboard focus lands on it, not on <body>.
    expect(page.locator("#announcer")).to_have_text("Payment successful. Your seats are confirmed.")
    expect(success.get_by_role("heading", name="Payment successful")).to_be_focused()
    screenshot(page, "desktop-success")

    success.get_by_role("link", name="View receipt").click()
    expect(page).to_have_url(re.compile(f"/payment/receipt/{transaction_id}$"))
    expect(page.locator(".receipt")).to_contain_text(pnr)
    expect(page.locator(".receipt")).to_contain_text("Visa •••• 4242")
    page.go_back()

    page.goto(f"/payment/status/{transaction_id}")  # the full status page, now final
    expect(page.locator(f"#payment-{transaction_id}.state-success")).to_be_visible()
    page.get_by_role("link", name="Go to my trips").click()
    expect(page).to_have_url(re.compile(r"/profile$"))
    booking = page.locator(".booking-card", has_text=pnr)
    expect(booking.locator(".booking-status")).to_have_text("Confirmed")
    expect(page.locator(f"#payment-row-{transaction_id}")).to_contain_text("Successful")
    expect(page.locator("#notifications")).to_contain_text(f"Booking {pnr} confirmed")
    expect(page.locator("#mail")).to_contain_text(pnr)
    screenshot(page, "desktop-profile")


def test_declined_card_shows_the_reason_and_an_inline_retry_that_succeeds(
    traveller, train, screenshot
):
    asha = traveller().register()
    asha.book(train)
    page = asha.page
    page.evaluate("window.sameDocument = 'yes'")

    asha.pay_by_card(CARD_DECLINED)
    failed = page.locator(".payment-status.state-failed")
    expect(failed.locator(".failure-reason")).to_contain_text("Card declined")
    assert failed.get_attribute("hx-trigger") is None
    declined_id = asha.transaction_id()
    retry = failed.locator("form[data-pay-form]")
    expect(failed.get_by_role("heading", name="Try again")).to_be_visible()
    screenshot(page, "desktop-failed-with-retry")

    # The method can change on retry: only the chosen method's fields are shown.
    retry.get_by_label("UPI", exact=True).check()
    expect(retry.get_by_label("UPI id")).to_be_visible()
    expect(retry.get_by_label("Card number")).to_be_hidden()
    asha.pay_by_card()  # back to the card, the good one this time

    expect(page.locator(".payment-status.state-pending")).to_be_visible()
    expect(page.locator(".payment-status.state-success")).to_be_visible()
    assert asha.transaction_id() != declined_id
    assert page.evaluate("window.sameDocument") == "yes"

    page.goto("/profile")
    expect(page.locator(f"#payment-row-{declined_id}")).to_contain_text("Card declined")
    expect(page.locator("#payments tbody tr")).to_have_count(2)


def test_double_click_on_pay_starts_exactly_one_attempt(traveller, train):
    asha = traveller().register()
    booking_id = asha.book(train)
    page = asha.page
    posts: list[str] = []
    page.on(
        "request",
        lambda request: (
            request.method == "POST"
            and "/payment/process/" in request.url
            and posts.append(request.url)
        ),
    )

    form = asha.fill_card()
    asha.pay_button(form).dblclick()

    expect(page.locator(".payment-status.state-success")).to_be_visible()
    assert posts == [f"{asha.base_url}/payment/process/{booking_id}"]
    status = asha.context.request.get(
        f"/payment/status/{asha.transaction_id()}", headers={"Accept": "application/json"}
    ).json()
    assert (status["status"], status["booking_status"]) == ("success", "confirmed")
    page.goto("/profile")
    expect(page.locator("#payments tbody tr")).to_have_count(1)


def test_cancelling_a_paid_booking_refunds_it_and_promotes_the_waitlist(
    traveller, server, screenshot
):
    one_seat = add_train(server, seats=1)
    asha = traveller().register("Asha Rao")
    asha.book(one_seat)
    asha.pay_by_card()
    expect(asha.page.locator(".state-success .outcome")).to_have_text("Your seats are confirmed.")

    ravi = traveller().register("Ravi Kumar")
    ravi.book(one_seat)
    ravi_pnr = ravi.page.locator(".trip-summary .pnr").inner_text()
    ravi.pay_by_card()
    expect(ravi.page.locator(".state-success .seat-outcome")).to_contain_text(
        "Waitlisted at position 1"
    )
    screenshot(ravi.page, "desktop-success-waitlisted")

    page = asha.page
    page.goto("/profile")
    booking = page.locator(".booking-card").first
    booking.get_by_role("link", name="Cancel passengers…").click()
    # The quote comes first: what is deducted and why, then one button to confirm.
    expect(page.locator(".cancel-quote caption")).to_contain_text("flat charge")
    expect(page.locator(".deduction")).to_contain_text("GST")
    screenshot(page, "desktop-cancel-quote")
    page.get_by_role("button", name=re.compile(r"^Cancel 1 passenger and refund")).click()
    expect(page).to_have_url(re.compile(r"/profile$"))
    flash = page.locator(".flash")
    expect(flash).to_contain_text("Refund")
    expect(page.locator(".booking-card").first.locator(".booking-status")).to_have_text("Cancelled")
    expect(page.locator("#payments .status-pill")).to_have_text("Refunded")
    screenshot(page, "desktop-profile-refunded")
    flash.get_by_role("button", name="Dismiss message").click()
    expect(flash).to_have_count(0)

    # Ravi did nothing: the refund promoted his booking, and his profile says so.
    ravi.page.goto("/profile")
    ravi_booking = ravi.page.locator(".booking-card", has_text=ravi_pnr)
    expect(ravi_booking.locator(".booking-status")).to_have_text("Confirmed")
    expect(ravi.page.locator("#notifications")).to_contain_text(
        f"Good news: booking {ravi_pnr} moved from the waitlist to confirmed"
    )
    screenshot(ravi.page, "desktop-profile-promoted")
    ravi.page.goto("/")
    expect(ravi.train(one_seat)).to_have_attribute("data-seats-left", "0")


def test_cancelling_one_of_two_passengers_updates_the_quote_in_place(traveller, server, screenshot):
    train = add_train(server, seats=4)
    asha = traveller().register("Asha Rao")
    asha.book(train, ["Asha Rao", "Vikram Rao"])
    asha.pay_by_card()
    expect(asha.page.locator(".state-success")).to_be_visible()
    page = asha.page
    page.get_by_role("link", name="Cancel passengers…").click()
    quote = page.locator(".cancel-quote")
    page.evaluate("window.sameDocument = 'yes'")
    # Everybody still booked is chosen at first, and the page says so in words.
    expect(quote.locator("#all-chosen")).to_be_visible()
    quote.get_by_label("Asha Rao").uncheck()
    # htmx re-quotes in place and the URL follows the choice.
    expect(page.locator(".cancel-quote tbody tr")).to_have_count(1)
    expect(page).to_have_url(re.compile(r"/cancel\?passenger=2$"))
    assert page.evaluate("window.sameDocument") == "yes"
    page.get_by_role("button", name=re.compile(r"^Cancel 1 passenger and refund")).click()
    expect(page).to_have_url(re.compile(r"/profile$"))
    card = page.locator(".booking-card").first
    expect(card.locator(".booking-status")).to_have_text("Confirmed")
    expect(card.locator("del")).to_have_text("Vikram Rao")
    expect(card.locator(".refund")).to_contain_text("Cancellation charge")
    screenshot(page, "desktop-profile-partly-cancelled")


def test_booking_form_adds_and_removes_passenger_rows(traveller, train):
    asha = traveller().register()
    asha.page.goto("/")
    card = asha.train(train)
    add = card.get_by_role("button", name="Add passenger")
    for _ in range(5):
        add.click()
    expect(card.locator("input[name=passenger_name]")).to_have_count(6)
    expect(add).to_be_hidden()  # six is the most a booking holds
    card.get_by_role("button", name="Remove passenger 2").click()
    expect(card.locator("input[name=passenger_name]")).to_have_count(5)
    expect(add).to_be_visible()
    for index, name in enumerate(["Asha Rao", "Vikram Rao", "Meera Rao", "Kabir Rao", "Ira Rao"]):
        card.get_by_label(f"Passenger {index + 1} name").fill(name)
    card.get_by_role("button", name="Book").click()
    expect(asha.page).to_have_url(PAY_URL)
    expect(asha.page.locator(".trip-summary")).to_contain_text("Ira Rao")
    expect(asha.page.locator(".trip-summary .total")).to_have_text("₹6,250.00")


def test_favicon_is_served_and_pages_log_no_console_errors(traveller, server):
    visitor = traveller()
    response = visitor.page.goto("/favicon.ico")
    assert response.status == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    for path in ("/auth/login", "/auth/register"):
        visitor.page.goto(path)
        icon = visitor.page.locator("link[rel=icon]").get_attribute("href")
        assert visitor.context.request.get(icon).ok
    # The CSP is live: an inline script is refused (and that refusal is the only error).
    with pytest.raises(Exception, match="Content Security Policy"):
        visitor.page.add_script_tag(content="window.injected = true")
    assert visitor.page.evaluate("window.injected") is None
    assert all("Content Security Policy" in error for error in visitor.errors)
    visitor.errors.clear()
