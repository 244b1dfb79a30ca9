"""The one way into a settlement: the gateway's verdict applied, then what it leaves to do.

Webhooks, reconciliation (the console's and the sweep's) all come in here. The verdict and
all its effects are one transaction (`service.settle`, steps/settle.py); a success that
its booking can no longer take (expired and the train full, or cancelled) is then returned
in full — the only part `refunds` plays. Above both: `refunds` itself uses `service`.
"""

from __future__ import annotations

from railserve.config import Settings
from railserve.payment import service
from railserve.payment.models import Actor
from railserve.payment.providers import Gateway
from railserve.payment.refunds import spread


async def settle_and_follow_up(
    gateway: Gateway, settings: Settings, transaction_id: str, succeeded: bool, **kw
) -> service.Settlement:
    """Settle an attempt (`kw` as `service.settle`); a success its booking cannot take is
    refunded in full."""
    result = await service.settle(transaction_id, succeeded, **kw)
    if result.needs_refund:
        await spread.refund_in_full(
            gateway,
            settings,
            result.payment.id,
            actor=Actor.SYSTEM,
            reason=service.LATE_REFUND_MESSAGE,
        )
    return result
