"""Each status group, defined once on its enum, is what the machines say it is."""

from __future__ import annotations

from statemachine import StateMachine

from railserve.models import BookingStatus
from railserve.payment.machine import PaymentMachine, RefundMachine
from railserve.payment.models import PaymentStatus, RefundStatus


def states(machine: type[StateMachine], test) -> set[str]:
    return {s.value for s in machine.states if test(s)}


def events(state) -> set[str]:
    return {t.event for t in state.transitions}


def reachable(machine: type[StateMachine], start: str) -> set[str]:
    seen, todo = set(), [next(s for s in machine.states if s.value == start)]
    while todo:
        state = todo.pop()
        if state.value not in seen:
            seen.add(state.value)
            todo.extend(t.target for t in state.transitions)
    return seen


def test_refundable_is_where_refund_is_allowed() -> None:
    assert set(PaymentStatus.REFUNDABLE) == states(PaymentMachine, lambda s: "refund" in events(s))


def test_final_is_the_machines_final_states() -> None:
    assert set(PaymentStatus.FINAL) == states(PaymentMachine, lambda s: s.final)


def test_captured_is_success_and_where_it_leads() -> None:
    assert set(PaymentStatus.CAPTURED) == reachable(PaymentMachine, PaymentStatus.SUCCESS)


def test_unsuccessful_is_final_and_not_captured() -> None:
    assert set(PaymentStatus.UNSUCCESSFUL) == set(PaymentStatus.FINAL) - set(PaymentStatus.CAPTURED)
    assert set(PaymentStatus.NOT_CAPTURED) == set(PaymentStatus) - set(PaymentStatus.CAPTURED)


def test_open_refund_is_not_final() -> None:
    assert set(RefundStatus.OPEN) == states(RefundMachine, lambda s: not s.final)


def test_booking_groups_partition_the_statuses() -> None:
    assert set(BookingStatus.OPEN) | set(BookingStatus.ENDED) == set(BookingStatus)
    assert not set(BookingStatus.OPEN) & set(BookingStatus.ENDED)
    assert set(BookingStatus.PAID) == set(BookingStatus.OPEN) - {BookingStatus.PENDING_PAYMENT}
    # A success arriving late still settles into an expired hold, never a cancelled one.
    assert set(BookingStatus.PAYABLE) == set(BookingStatus) - set(BookingStatus.PAID) - {
        BookingStatus.CANCELLED
    }


def test_groups_are_not_members() -> None:
    assert len(PaymentStatus) == 6 and len(BookingStatus) == 5 and len(RefundStatus) == 3
