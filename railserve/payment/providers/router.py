"""Several gateways at once: routes by method, failover, and each attempt's own gateway.

`Gateways` is what the app holds (app.extensions["railserve.gateways"]). It also behaves
as one gateway for code that predates routing: `query`, `refund` and `query_refund` ask the
provider that took the attempt, found from the database.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial

from tortoise.models import Model

from railserve import running
from railserve.config import Settings
from railserve.errors import NotFound, Unavailable
from railserve.payment.models import Payment, PaymentMethod, Refund
from railserve.payment.providers import (
    ChargeRequest,
    ChargeStatus,
    Deliver,
    Gateway,
    GatewayError,
    LedgerEntry,
    RefundRequest,
    RefundResult,
    RefundState,
    TestTrigger,
    factory_for,
    methods_of,
    test_triggers_of,
)
from railserve.payment.providers.breaker import Breaker

DEFAULT_SIGNATURE_HEADER = "RailServe-Signature"
RAILSERVE_FORMAT = "simulated"  # the provider of POST /payment/webhook
# A charge call that takes longer than this counts as an error (and fails the attempt).
CHARGE_TIMEOUT = 5.0


class GatewayTimeout(GatewayError):
    def __init__(self) -> None:
        super().__init__("The payment gateway did not answer in time")


class Gateways:
    def __init__(
        self,
        providers: dict[str, Gateway],
        routes: dict[str, str],
        cooldown: float,
        clock: Callable[[], float] = time.monotonic,
        charge_timeout: float = CHARGE_TIMEOUT,
    ) -> None:
        self.providers = providers  # in RAILSERVE_GATEWAYS order: the failover order
        self.routes = routes
        self.charge_timeout = charge_timeout
        self._clock = clock
        self.breakers = {
            name: Breaker(cooldown, self.now, on_change=partial(running.breaker_changed, name))
            for name in providers
        }

    @classmethod
    def from_settings(cls, settings: Settings, deliver_for: Callable[[str], Deliver]) -> Gateways:
        providers = {
            name: factory_for(name)(settings, deliver_for(name)) for name in settings.gateway_names
        }
        gateways = cls(providers, settings.routes, settings.gateway_cooldown)
        _latest.append(weakref.ref(gateways))
        del _latest[:-1]
        return gateways

    def now(self) -> float:
        return self._clock()

    def set_clock(self, clock: Callable[[], float]) -> None:
        """Tests move time on without sleeping through a cooldown."""
        self._clock = clock

    # Which provider takes a new attempt.

    def candidates(self, method: str) -> list[str]:
        """Providers that can take `method` now, the routed one first."""
        preferred = self.routes.get(method) or self.routes.get("*")
        order = [preferred, *(name for name in self.providers if name != preferred)]
        return [
            name
            for name in order
            if name in self.providers
            and method in methods_of(self.providers[name])
            and not self.breakers[name].open
        ]

    def route(self, method: str) -> str:
        """The provider for a new attempt by `method`; Unavailable (503) when none can."""
        names = self.candidates(method)
        if not names:
            raise Unavailable(unavailable_message(method))
        return names[0]

    def unavailable_methods(self) -> frozenset[str]:
        return frozenset(m.value for m in PaymentMethod if not self.candidates(m.value))

    def ledger_row(self, name: str, request: ChargeRequest) -> Model | None:
        """Provider `name`'s record of the charge `request` to commit with the attempt, if
        it keeps its books in our database (see `Gateway`)."""
        make = getattr(self.providers[name], "ledger_row", None)
        return None if make is None else make(request)

    async def charge_with(self, name: str, request: ChargeRequest) -> None:
        """Hand a charge to provider `name`; an error or a slow answer counts against its
        breaker and is raised as GatewayError (nothing was charged)."""
        breaker = self.breakers[name]
        # Never cancelled: a cancelled database call can wedge SQLite. A late call runs on
        # in the background; should it take the money after all, the gateway's success
        # webhook meets a failed attempt and the money is returned (webhook/handler.py).
        task = asyncio.ensure_future(self.providers[name].charge(request))
        done, _ = await asyncio.wait({task}, timeout=self.charge_timeout)
        if not done:
            breaker.failed()
            task.add_done_callback(_consume)
            raise GatewayTimeout()
        try:
            task.result()
        except GatewayError:
            breaker.failed()
            raise
        except Exception as error:
            breaker.failed()
            raise GatewayError() from error
        breaker.succeeded()

    # The provider of an existing attempt.

    def gateway_for(self, name: str) -> Gateway:
        try:
            return self.providers[name]
        except KeyError:
            raise NotFound(f"No payment gateway {name!r} is configured.") from None

    def for_payment(self, payment: Payment) -> Gateway:
        """The gateway that took `payment`: refunds and reconciliation ask this one."""
        return self.gateway_for(payment.gateway)

    async def _for_transaction(self, transaction_id: str) -> Gateway:
        names = await Payment.filter(transaction_id=transaction_id).values_list(
            "gateway", flat=True
        )
        return self.gateway_for(names[0] if names else self._default())

    def _default(self) -> str:
        return self.routes.get("*") or next(iter(self.providers))

    # Webhooks: RailServe's own format unless a provider has one of its own.

    def webhook_reader(self, provider: str) -> Callable[[bytes, str | None], dict] | None:
        """The provider's own verify-and-translate step, or None for RailServe's format."""
        return getattr(self._sender(provider), "read_webhook", None)

    def signature_header(self, provider: str) -> str:
        return getattr(self._sender(provider), "signature_header", DEFAULT_SIGNATURE_HEADER)

    def _sender(self, provider: str) -> Gateway | None:
        # POST /payment/webhook speaks RailServe's format for any provider without its own,
        # even when the simulated gateway itself is not configured.
        if provider == RAILSERVE_FORMAT and provider not in self.providers:
            return None
        return self.gateway_for(provider)

    def same_webhook(self, owner: str, provider: str) -> bool:
        """Whether `provider`'s endpoint speaks for attempts taken by `owner`: a provider's
        events settle only its own attempts."""
        return self._endpoint(owner) == self._endpoint(provider)

    def _endpoint(self, name: str) -> str:
        gateway = self.providers.get(name)
        return name if hasattr(gateway, "read_webhook") else DEFAULT_SIGNATURE_HEADER

    # One gateway to older call sites: each question goes to the attempt's own provider.

    async def charge(self, request: ChargeRequest) -> None:
        await self.charge_with(self.route(request.method), request)

    async def query(self, transaction_id: str) -> ChargeStatus:
        return await (await self._for_transaction(transaction_id)).query(transaction_id)

    async def refund(self, request: RefundRequest) -> RefundResult:
        return await (await self._for_transaction(request.transaction_id)).refund(request)

    async def query_refund(self, refund_id: str) -> RefundState:
        names = await Refund.filter(refund_id=refund_id).values_list("payment__gateway", flat=True)
        gateway = self.gateway_for(names[0] if names else self._default())
        return await gateway.query_refund(refund_id)

    # The providers' books: reconciliation and `railserve check` ask each one.

    async def ledgers(self, since: datetime | None = None) -> dict[str, list[LedgerEntry]]:
        """Each configured provider's ledger, by provider name (a provider without
        `ledger` has nothing to compare)."""
        books: dict[str, list[LedgerEntry]] = {}
        for name, gateway in self.providers.items():
            read = getattr(gateway, "ledger", None)
            books[name] = list(await read(since)) if read else []
        return books

    async def ledger(self, since: datetime | None = None) -> list[LedgerEntry]:
        """Every provider's ledger, one after the other."""
        return [entry for book in (await self.ledgers(since)).values() for entry in book]

    def test_triggers(self) -> Sequence[TestTrigger]:
        """Every provider's test instruments, once each."""
        rows: dict[tuple[str, str], TestTrigger] = {}
        for gateway in self.providers.values():
            for row in test_triggers_of(gateway):
                rows.setdefault((row[0], row[1]), row)
        return tuple(rows.values())

    async def aclose(self) -> None:
        for gateway in self.providers.values():
            await gateway.aclose()


_latest: list[weakref.ref[Gateways]] = []


def configured(gateways: Gateways | None = None) -> Gateways:
    """`gateways`, else the gateways this process made last (the running app's), else the
    ones RAILSERVE_GATEWAYS configures (for reading ledgers only: they deliver nowhere)."""
    if gateways is not None:
        return gateways
    if _latest and (latest := _latest[-1]()) is not None:
        return latest
    from railserve import config

    return Gateways.from_settings(config.from_env(), lambda name: _deliver_nowhere)


async def _deliver_nowhere(body: bytes, signature: str) -> None:
    return None


def _consume(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: a late error is already counted and reported


def unavailable_message(method: str) -> str:
    try:
        label = PaymentMethod(method).label
    except ValueError:
        label = method
    return (
        f"Payments by {label} are unavailable right now: the payment gateway is not "
        "answering. Nothing was charged. Try again in a minute, or choose another method."
    )
