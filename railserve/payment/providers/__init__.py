"""The gateway interface, the registry of providers, and the router that picks one.

A gateway accepts a charge and reports its result later through its signed webhook; it
can be asked about a charge (reconciliation after a crash), asked to refund one, and asked
about a refund, and asked for its ledger (`ledger`: the charges and refunds on its books,
which reconciliation, `railserve check` and the console compare with ours; nothing outside
a provider reads its tables). Providers live one per module in this package and register themselves
when imported; the registry imports them by name from RAILSERVE_GATEWAYS, so adding one is
a new module and a line of configuration. `Gateways` (router.py) routes each method to a
provider (RAILSERVE_GATEWAY_ROUTES), skips one whose circuit breaker is open, and finds
the provider of an existing attempt (`for_payment`).
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from railserve.config import Settings

# Hands a signed webhook (raw body, signature header value) to the app's webhook handler,
# for the provider that sent it.
Deliver = Callable[[bytes, str], Awaitable[object]]

ALL_METHODS = frozenset({"credit_card", "debit_card", "net_banking", "upi", "wallet"})
# (method, value, outcome): instruments with a known outcome, shown in test mode.
TestTrigger = tuple[str, str, str]


class GatewayError(Exception):
    """A charge the gateway could not take: nothing was charged.

    Raised by `charge`; counts against the provider's circuit breaker. The message is safe
    to show to the passenger.
    """

    def __init__(
        self, message: str = "The payment gateway is unavailable: nothing was charged"
    ) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ChargeRequest:
    transaction_id: str
    amount: int
    currency: str
    method: str
    # The raw instrument (card number, UPI id, ...): handed to the gateway, never stored.
    instrument: Mapping[str, str] = field(repr=False)
    # The provider's `ledger_row` for this charge was committed with the attempt: its
    # `charge` writes nothing more.
    recorded: bool = False


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


@dataclass(frozen=True)
class LedgerEntry:
    """One line of a provider's books: a charge (`refund_id` None) or one attempt at a
    refund. `status` is the outcome the provider decided; `settles_at` is when it becomes
    final on its side (later than now: still in flight)."""

    transaction_id: str
    amount: int
    currency: str
    status: Literal["succeeded", "failed"]
    settles_at: datetime
    refund_id: str | None = None
    attempt: int = 0

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    def settled(self, now: datetime) -> bool:
        return self.settles_at <= now


class Gateway(Protocol):
    """What a provider implements. Optional members (read with defaults by the router):
    `methods` (a frozenset of payment methods; default all five), `test_triggers()`
    (rows for the pay page in test mode), `signature_header` (default RailServe-Signature),
    `read_webhook(raw, signature)` for a provider with its own webhook format (it
    returns the event in RailServe's format, see railserve/payment/webhook/event.py), and
    `ledger_row(request)` for a provider whose books are in our database (the simulators):
    its record of the charge, which the attempt's start commits with the attempt (None: it
    will refuse the charge); `charge` then gets the request `recorded`."""

    async def charge(self, request: ChargeRequest) -> None: ...

    async def query(self, transaction_id: str) -> ChargeStatus: ...

    async def refund(self, request: RefundRequest) -> RefundResult: ...

    async def query_refund(self, refund_id: str) -> RefundState: ...

    async def ledger(self, since: datetime | None = None) -> list[LedgerEntry]:
        """Every charge and refund attempt on the provider's books (created at or after
        `since`), refund attempts in attempt order; a real provider pages its API."""
        ...

    async def aclose(self) -> None: ...


GatewayFactory = Callable[[Settings, Deliver], Gateway]
_REGISTRY: dict[str, GatewayFactory] = {}


def register(name: str, factory: GatewayFactory) -> None:
    """Make a provider known by name (each provider module calls this when imported)."""
    _REGISTRY[name] = factory


def factory_for(name: str) -> GatewayFactory:
    """The provider registered as `name`, importing railserve.payment.providers.<name>
    the first time it is asked for."""
    if name not in _REGISTRY and name.isidentifier():
        module = f"{__name__}.{name}"
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name != module:
                raise
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise ValueError(f"unknown payment gateway {name!r} (registered: {known})") from None


def methods_of(gateway: Gateway) -> frozenset[str]:
    return frozenset(getattr(gateway, "methods", ALL_METHODS))


def test_triggers_of(gateway: Gateway) -> Sequence[TestTrigger]:
    triggers = getattr(gateway, "test_triggers", None)
    return tuple(triggers()) if triggers else ()


def create(settings: Settings, deliver_for: Callable[[str], Deliver]):
    """Every configured provider behind one router; `deliver_for(name)` hands a provider's
    webhooks to the handler of that provider."""
    from railserve.payment.providers.router import Gateways

    return Gateways.from_settings(settings, deliver_for)
