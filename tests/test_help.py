"""GET /help: the common questions, answered without logging in, from the rules in force."""

from __future__ import annotations

from dataclasses import replace

from bs4 import BeautifulSoup

from railserve.payment.rules import DEFAULT_RULES_TOML
from tests.support.passenger import Passenger


def text_of(html: str) -> str:
    return " ".join(BeautifulSoup(html, "html.parser").get_text(" ").split())


async def test_help_needs_no_login_and_answers_the_common_questions(app):
    response = await app.test_client().get("/help")
    assert response.status_code == 200
    page = text_of(await response.get_data(as_text=True))
    assert "Money was debited but the payment failed" in page
    assert "This is not a refund: the debit is reversed automatically" in page
    assert "within 5–7 business days" in page
    assert "UPI 3–4 business days" in page
    assert "Net banking 3–4 business days" in page and "Wallet 3–4 business days" in page
    assert "Credit card or debit card 6–7 business days" in page
    assert page.count("5–7") == 1  # the reversal only: refunds take 3–4 or 6–7
    assert "support@railserve.example" in page and "+91 80 4718 2000" in page


async def test_help_lists_the_charges_of_the_default_rules(app):
    page = text_of(await (await app.test_client().get("/help")).get_data(as_text=True))
    for row in (
        "AC First Class (1A), Executive Chair Car (EC) ₹240.00",
        "AC 2 Tier (2A), First Class (FC) ₹200.00",
        "AC 3 Tier (3A), AC Chair Car (CC), AC 3 Tier Economy (3E) ₹180.00",
        "Sleeper (SL) ₹120.00",
        "Second Sitting (2S) ₹60.00",
    ):
        assert row in page
    assert "more than 48 h before departure: flat charge per passenger" in page
    assert "at least 12 h before departure: 25 % of the fare" in page
    assert "at least 4 h before departure: 50 % of the fare" in page
    assert "Less than 4 h before departure the chart is prepared" in page
    assert "clerkage charge of ₹60.00 per passenger, until 30 minutes" in page
    assert "GST at 5 % is added to the charge for 1A, EC, 2A, FC, 3A, CC, 3E;" in page


async def test_help_follows_a_replaced_rules_file(settings, app_with, tmp_path):
    rules = tmp_path / "rules.toml"
    rules.write_text(
        DEFAULT_RULES_TOML.replace('SL = "120"', 'SL = "150"')
        .replace("hours = 48", "hours = 72")
        .replace("hours = 4\n", "hours = 8\n")
        .replace('clerkage = "60"', 'clerkage = "75"')
    )
    async with app_with(settings, refund_rules=str(rules)) as app:
        page = text_of(await (await app.test_client().get("/help")).get_data(as_text=True))
    assert "Sleeper (SL) ₹150.00" in page and "(SL) ₹120.00" not in page
    assert "more than 72 h before departure" in page
    assert "Less than 8 h before departure the chart is prepared" in page
    assert "clerkage charge of ₹75.00" in page


async def test_help_is_linked_from_every_page(app):
    visitor = await app.test_client().get("/auth/login")
    assert 'href="/help"' in await visitor.get_data(as_text=True)
    person = await Passenger.sign_up(app)
    assert 'href="/help"' in await person.text("/")
    assert (await person.get("/help")).status_code == 200


async def test_support_contacts_come_from_settings(settings, app_with):
    changed = replace(settings, support_email="help@rail.test", support_phone="1800 11 2222")
    async with app_with(changed) as app:
        page = await (await app.test_client().get("/help")).get_data(as_text=True)
    assert "help@rail.test" in page and "1800 11 2222" in page


async def test_help_explains_paying_in_parts_from_the_plans(app):
    html = await (await app.test_client().get("/help")).get_data(as_text=True)
    assert "Paying in parts" in html and "Deposit now, balance later" in html
    assert "Part 2: 75 % of the fare by 72 h before departure." in html
