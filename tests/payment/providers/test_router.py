"""Routing by method, the circuit breaker and failover, through the pay URLs.

A provider that errors is registered here, in the test, through the public registry: that
is all a third provider needs besides a line of configuration.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from railserve.payment import providers
from railserve.payment.models import Payment, PaymentEvent
from railserve.payment.providers.router import Gateways
from tests.support.passenger import JSON, Passenger, card, make_train


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FlakyGateway:
    """Takes UPI and wallets; every charge errors while `broken` is set."""

    methods = frozenset({"upi", "wallet"})
    broken = True

    def __init__(self, settings, deliver) -> None:
        self.charged: list[str] = []

    def test_triggers(self):
        return (("Wallet", "any", "flaky"),)

    async def charge(self, request: providers.ChargeRequest) -> None:
        if FlakyGateway.broken:
            raise ConnectionError("flaky is down")
        self.charged.append(request.transaction_id)

    async def query(self, transaction_id: str) -> providers.ChargeStatus:
        return providers.ChargeStatus("pending")

    async def refund(self, request):
        return providers.RefundResult(False, reason="flaky refunds nothing")

    async def query_refund(self, refund_id: str):
        return providers.RefundState("unknown")

    async def aclose(self) -> None:
        return None


providers.register("flaky", FlakyGateway)

WALLET = {"method": "wallet", "wallet": "paytm"}
UPI = {"method": "upi", "upi_id": "success@upi"}


@pytest.fixture(autouse=True)
def flaky_is_broken():
    FlakyGateway.broken = True
    yield
    FlakyGateway.broken = True


@pytest.fixture
def settings(settings):
    """A third provider: one registration above, and a line of configuration."""
    return replace(
        settings, gateways="simulated,simupi,flaky", gateway_routes="wallet=flaky,upi=simupi"
    )


def gateways_of(app) -> Gateways:
    return app.extensions["railserve.gateways"]


async def attempt(person: Passenger, fields: dict, wait: bool = True) -> tuple[int, dict]:
    booking_id = await person.book(await make_train())
    form = {**await person.pay_form(booking_id), **fields}
    response = await person.post(f"/payment/process/{booking_id}", form)
    body = await response.get_data(as_text=True)
    if response.status_code != 303:
        return response.status_code, {"body": body}
    txn = response.headers["Location"].rsplit("/", 1)[-1]
    return 303, await (person.wait_final(txn) if wait else person.status(txn))


def test_routes_come_from_configuration(app):
    gateways = gateways_of(app)
    assert list(gateways.providers) == ["simulated", "simupi", "flaky"]
    assert gateways.route("upi") == "simupi"
    assert gateways.route("wallet") == "flaky"
    assert gateways.route("credit_card") == "simulated"
    assert gateways.route("net_banking") == "simulated"


async def test_three_errors_open_the_breaker_then_the_route_falls_over(app, passenger):
    clock = Clock()
    gateways = gateways_of(app)
    gateways.set_clock(clock)
    for _ in range(3):
        status, final = await attempt(passenger, WALLET)
        assert status == 303
        assert final["status"] == "failed" and final["gateway"] == "flaky"
        assert "nothing was charged" in final["failure_reason"].lower()
        assert "try again in a minute" in final["advice"].lower()
    assert gateways.route("wallet") == "simulated"  # skipped: next that takes wallets
    status, final = await attempt(passenger, WALLET)
    assert final["gateway"] == "simulated" and final["status"] in ("success", "failed")

    clock.now += app.config["RAILSERVE"].gateway_cooldown  # the cooldown ends
    FlakyGateway.broken = False
    assert gateways.route("wallet") == "flaky"
    status, final = await attempt(passenger, WALLET, wait=False)
    assert final["gateway"] == "flaky"  # closed again: its charge went through
    assert final["status"] == "pending" and final["advice"] is None
    assert gateways.breakers["flaky"].failures == 0


async def test_declines_do_not_open_the_breaker(app, passenger):
    for _ in range(4):
        _, final = await attempt(passenger, card("4000 0000 0000 0002"))
        assert final["status"] == "failed" and final["gateway"] == "simulated"
    assert gateways_of(app).route("credit_card") == "simulated"


async def test_a_slow_charge_counts_as_an_error(app, passenger):
    import asyncio

    class Slow(FlakyGateway):
        async def charge(self, request):
            await asyncio.Event().wait()  # never answers: only the timeout ends it

    gateways = gateways_of(app)
    gateways.providers["flaky"] = Slow(None, None)
    gateways.charge_timeout = 0.05
    _, final = await attempt(passenger, WALLET)
    assert final["status"] == "failed"
    assert "did not answer in time" in final["failure_reason"]
    assert gateways.breakers["flaky"].failures == 1


async def test_with_no_gateway_left_the_method_is_unavailable_and_nothing_is_written(
    app_with, settings
):
    async with app_with(settings, gateways="flaky", gateway_routes="*=flaky") as only_flaky:
        person = await Passenger.sign_up(only_flaky)
        for _ in range(3):
            await attempt(person, WALLET)
        booking_id = await person.book(await make_train())
        page = await person.text(f"/payment/pay/{booking_id}")
        assert "unavailable right now" in page
        before = (await Payment.all().count(), await PaymentEvent.all().count())
        form = {**await person.pay_form(booking_id), **WALLET}
        response = await person.post(f"/payment/process/{booking_id}", form)
        assert response.status_code == 503
        assert "unavailable right now" in await response.get_data(as_text=True)
        assert (await Payment.all().count(), await PaymentEvent.all().count()) == before
        json_post = await person.client.post(
            f"/payment/process/{booking_id}",
            form={**form, "csrf_token": person.csrf},
            headers=JSON,
        )
        assert json_post.status_code == 503
        assert "unavailable" in (await json_post.get_json())["error"]
        again = {**await person.pay_form(booking_id), **WALLET}
        htmx = await person.post(f"/payment/process/{booking_id}", again, htmx=True)
        assert htmx.status_code == 503
        partial = await htmx.get_data(as_text=True)
        assert "unavailable right now" in partial and "data-pay-form" in partial
        assert "<html" not in partial
        assert (await Payment.all().count(), await PaymentEvent.all().count()) == before
        # Methods flaky does not take have no gateway at all.
        assert "credit_card" in gateways_of(only_flaky).unavailable_methods()


async def test_test_triggers_reach_the_pay_page_through_the_gateways(passenger, train):
    html = await passenger.text(f"/payment/pay/{await passenger.book(train)}")
    assert "4000 0000 0000 0119" in html  # simulated
    assert "success@upi" in html  # simupi
    assert "flaky" in html  # the test provider's own row


def test_configuration_of_routes_and_the_legacy_gateway_setting():
    from railserve.config import ConfigError, from_env

    default = from_env({})
    assert default.gateway_names == ["simulated", "simupi"]
    assert default.routes == {"upi": "simupi", "*": "simulated"}
    legacy = from_env({"RAILSERVE_GATEWAY": "flaky"})  # names the `*` route
    assert legacy.routes == {"upi": "simupi", "*": "flaky"}
    assert legacy.gateway_names == ["simulated", "simupi", "flaky"]
    assert from_env({"RAILSERVE_WEBHOOK_SECRET": "new, old"}).webhook_secrets == ["new", "old"]
    for bad in (
        {"RAILSERVE_GATEWAY_ROUTES": "upi"},
        {"RAILSERVE_GATEWAY_COOLDOWN": "-1"},
        {"RAILSERVE_LOCALE": "xx_NOPE"},
        {"RAILSERVE_TIMEZONE": "Mars/Olympus"},
    ):
        with pytest.raises(ConfigError):
            from_env(bad)
    with pytest.raises(ValueError, match="unknown payment gateway 'nope'"):
        providers.factory_for("nope")


def test_the_breaker_opens_after_three_errors_and_closes_after_the_cooldown():
    from railserve.payment.providers.breaker import Breaker

    clock = Clock()
    breaker = Breaker(30.0, clock)
    breaker.failed()
    breaker.failed()
    breaker.succeeded()  # not in a row: starts again
    breaker.failed()
    breaker.failed()
    assert not breaker.open
    breaker.failed()
    assert breaker.open
    clock.now += 29.9
    assert breaker.open
    clock.now += 0.1
    assert not breaker.open  # one attempt may try it again
    breaker.failed()
    assert breaker.open  # and a failure opens it anew
