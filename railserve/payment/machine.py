"""The payment and refund lifecycles: states and transitions, nothing else.

The service binds a machine to a row to ask whether a move is allowed; the database
write that makes it real is a compare-and-set done by the service.
"""

from __future__ import annotations

from statemachine import State, StateMachine

from railserve.payment.models import PaymentStatus, RefundStatus


class PaymentMachine(StateMachine):
    pending = State(initial=True, value=PaymentStatus.PENDING)
    success = State(value=PaymentStatus.SUCCESS)
    failed = State(final=True, value=PaymentStatus.FAILED)
    cancelled = State(final=True, value=PaymentStatus.CANCELLED)
    partially_refunded = State(value=PaymentStatus.PARTIALLY_REFUNDED)
    refunded = State(final=True, value=PaymentStatus.REFUNDED)

    succeed = pending.to(success)
    fail = pending.to(failed)
    cancel = pending.to(cancelled)
    # Some passengers cancelled, or an operator's partial refund.
    refund_part = success.to(partially_refunded) | partially_refunded.to.itself()
    # The booking cancelled as a whole (charges may keep part of the money).
    refund = success.to(refunded) | partially_refunded.to(refunded)


class RefundMachine(StateMachine):
    pending = State(initial=True, value=RefundStatus.PENDING)
    succeeded = State(final=True, value=RefundStatus.SUCCEEDED)
    # Not final: an operator may retry it or record money returned another way.
    failed = State(value=RefundStatus.FAILED)

    succeed = pending.to(succeeded)
    fail = pending.to(failed)
    retry = failed.to(pending)  # an operator asks the gateway again
    settle_offline = failed.to(succeeded)  # an operator returned the money another way
