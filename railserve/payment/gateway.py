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
class RefundRequest:
    refund_id: str
    # 1 for the first time this refund is asked of the gateway, 2 for the retry after a
    # refusal, ...: the gateway treats (refund_id, attempt) as its idempotency key.
    attempt: int
    transaction_id: str
    amount: int
    currency: str


@dataclass(frozen=True)
class RefundResult:
    """The gateway's immediate answer: accepted (it settles later, through the webhook,
    or at once when `state` says so) or refused."""

    ok: bool
    reference: str | None = None
    reason: str | None = None
    state: Literal["pending", "succeeded", "failed"] = "pending"


@dataclass(frozen=True)
class RefundState:
    """What the gateway knows of a refund: the latest attempt it was asked for."""

    state: Literal["unknown", "pending", "succeeded", "failed"]
    attempt: int = 0
    reference: str | None = None
    failure_reason: str | None = None


class Gateway(Protocol):
    async def charge(self, request: ChargeRequest) -> None: ...

    async def query(self, transaction_id: str) -> ChargeStatus: ...

    async def refund(self, request: RefundRequest) -> RefundResult: ...

    async def query_refund(self, refund_id: str) -> RefundState: ...

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
