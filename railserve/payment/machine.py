"""The payment lifecycle: states and transitions, nothing else.

The service binds a machine to a payment row to ask whether a move is allowed; the
database write that makes it real is a compare-and-set done by the service.
"""

from __future__ import annotations

from statemachine import State, StateMachine

from railserve.payment.models import PaymentStatus


class PaymentMachine(StateMachine):
    pending = State(initial=True, value=PaymentStatus.PENDING)
    success = State(value=PaymentStatus.SUCCESS)
    failed = State(final=True, value=PaymentStatus.FAILED)
    cancelled = State(final=True, value=PaymentStatus.CANCELLED)
    refunded = State(final=True, value=PaymentStatus.REFUNDED)

    succeed = pending.to(success)
    fail = pending.to(failed)
    cancel = pending.to(cancelled)
    refund = success.to(refunded)
