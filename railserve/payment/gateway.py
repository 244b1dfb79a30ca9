"""The gateway interface and the registry that picks one by RAILSERVE_GATEWAY.

A gateway accepts a charge and reports its result later through the signed webhook; it
can be asked about a charge (reconciliation after a crash) and asked to refund one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from railserve.config import Settings

# Hands a signed webhook (raw body, signature header) to the app's webhook handler.
Deliver = Callable[[bytes, str], Awaitable[object]]


@dataclass(frozen=True)
class ChargeRequest:
    transaction_id: str
    amount: int
    currency: str
    method: str
    # The raw instrument (card number, UPI id, ...): handed to the gateway, never stored.
    instrument: Mapping[str, str] = field(repr=False)


@dataclass(frozen=True)
class ChargeStatus:
    state: Literal["unknown", "pending", "succeeded", "failed"]
    failure_reason: str | None = None
    retryable: bool | None = None


@dataclass(frozen=True)
class RefundResult:
    ok: bool
    reference: str | None = None
    reason: str | None = None


class Gateway(Protocol):
    async def charge(self, request: ChargeRequest) -> None: ...

    async def query(self, transaction_id: str) -> ChargeStatus: ...

    async def refund(self, transaction_id: str, amount: int, currency: str) -> RefundResult: ...

    async def aclose(self) -> None: ...


GatewayFactory = Callable[[Settings, Deliver], Gateway]
_REGISTRY: dict[str, GatewayFactory] = {}


def register(name: str, factory: GatewayFactory) -> None:
    _REGISTRY[name] = factory


def create(settings: Settings, deliver: Deliver) -> Gateway:
    from railserve.payment import simulator  # noqa: F401  registers "simulated"

    try:
        factory = _REGISTRY[settings.gateway]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise ValueError(
            f"unknown RAILSERVE_GATEWAY {settings.gateway!r} (known: {known})"
        ) from None
    return factory(settings, deliver)
