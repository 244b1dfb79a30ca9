"""Fixtures for the security suite: a gateway that holds attempts pending, and a clean slate.

The simulator settles every attempt by itself; many checks here need an attempt that stays
`pending` until the test sends the gateway's webhook. A long simulator delay would do, but
the app then waits for those reports when it shuts down, so these tests register a gateway
of their own through the public registry instead.
"""

from __future__ import annotations

import secrets
from dataclasses import replace

import pytest

from railserve.config import Settings
from railserve.payment import providers as gateway


class HeldGateway:
    """Accepts every charge and reports nothing: the test plays the gateway's webhook."""

    def __init__(self, settings: Settings, deliver: gateway.Deliver) -> None:
        self.settings = settings

    async def charge(self, request: gateway.ChargeRequest) -> None:
        return None

    async def query(self, transaction_id: str) -> gateway.ChargeStatus:
        return gateway.ChargeStatus("pending")

    async def refund(self, transaction_id: str, amount: int, currency: str) -> gateway.RefundResult:
        return gateway.RefundResult(True, reference="RFD" + secrets.token_hex(6).upper())

    async def aclose(self) -> None:
        return None


gateway.register("held", HeldGateway)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings, with a gateway that keeps every attempt pending (every
    method is routed to it: RAILSERVE_GATEWAY names the `*` route)."""
    return replace(settings, gateway="held", gateways="held", gateway_routes="")
