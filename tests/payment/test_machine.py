"""The payment lifecycle alone: no database."""

import pytest
from statemachine.exceptions import TransitionNotAllowed

from railserve.payment.machine import PaymentMachine, RefundMachine
from railserve.payment.models import PaymentStatus, RefundStatus

ALLOWED = {
    (PaymentStatus.PENDING, "succeed"): PaymentStatus.SUCCESS,
    (PaymentStatus.PENDING, "fail"): PaymentStatus.FAILED,
    (PaymentStatus.PENDING, "cancel"): PaymentStatus.CANCELLED,
    (PaymentStatus.SUCCESS, "refund"): PaymentStatus.REFUNDED,
    (PaymentStatus.SUCCESS, "refund_part"): PaymentStatus.PARTIALLY_REFUNDED,
    (PaymentStatus.PARTIALLY_REFUNDED, "refund_part"): PaymentStatus.PARTIALLY_REFUNDED,
    (PaymentStatus.PARTIALLY_REFUNDED, "refund"): PaymentStatus.REFUNDED,
}
EVENTS = ("succeed", "fail", "cancel", "refund_part", "refund")
REFUND_ALLOWED = {
    (RefundStatus.PENDING, "succeed"): RefundStatus.SUCCEEDED,
    (RefundStatus.PENDING, "fail"): RefundStatus.FAILED,
    # An operator: ask the gateway again, or record the money returned another way.
    (RefundStatus.FAILED, "retry"): RefundStatus.PENDING,
    (RefundStatus.FAILED, "settle_offline"): RefundStatus.SUCCEEDED,
}


class Row:
    def __init__(self, status: PaymentStatus) -> None:
        self.status = status


@pytest.mark.parametrize(("source", "event"), list(ALLOWED))
def test_allowed_transitions(source, event):
    row = Row(source)
    PaymentMachine(model=row, state_field="status").send(event)
    assert row.status == ALLOWED[(source, event)]


@pytest.mark.parametrize(
    ("source", "event"),
    [(s, e) for s in PaymentStatus for e in EVENTS if (s, e) not in ALLOWED],
)
def test_every_other_transition_is_refused_and_changes_nothing(source, event):
    row = Row(source)
    with pytest.raises(TransitionNotAllowed):
        PaymentMachine(model=row, state_field="status").send(event)
    assert row.status == source


def test_a_row_loaded_from_the_database_resumes_its_state():
    machine = PaymentMachine(model=Row(PaymentStatus.SUCCESS), state_field="status")
    assert sorted(event.id for event in machine.allowed_events) == ["refund", "refund_part"]


def test_final_states_allow_nothing():
    for status in (PaymentStatus.FAILED, PaymentStatus.CANCELLED, PaymentStatus.REFUNDED):
        machine = PaymentMachine(model=Row(status), state_field="status")
        assert machine.allowed_events == []


@pytest.mark.parametrize(
    ("source", "event"),
    [(s, e) for s in RefundStatus for e in ("succeed", "fail", "retry", "settle_offline")],
)
def test_refund_lifecycle_moves_only_as_allowed(source, event):
    row = Row(source)
    machine = RefundMachine(model=row, state_field="status")
    if (source, event) in REFUND_ALLOWED:
        machine.send(event)
        assert row.status == REFUND_ALLOWED[(source, event)]
    else:
        with pytest.raises(TransitionNotAllowed):
            machine.send(event)
        assert row.status == source


def test_the_refund_lifecycle_has_exactly_its_moves():
    moves = {
        (transition.source.value, transition.target.value)
        for state in RefundMachine.states
        for transition in state.transitions
    }
    assert moves == {
        ("pending", "succeeded"),
        ("pending", "failed"),
        ("failed", "pending"),
        ("failed", "succeeded"),
    }
