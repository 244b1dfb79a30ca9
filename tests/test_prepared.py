"""Reads with their SQL built once: the same answers as the ORM query they were written as."""

from __future__ import annotations

import pytest
from tortoise.expressions import Subquery

from railserve import db
from railserve.errors import NotFound
from railserve.models import Booking, Notification, Train, User
from railserve.payment import service, status_card
from railserve.payment.models import Payment, WebhookEvent
from railserve.prepared import PreparedRead
from tests.support.passenger import Passenger, make_train


async def two_attempts(slow_app) -> tuple[str, str]:
    first, second = await Passenger.sign_up(slow_app), await Passenger.sign_up(slow_app)
    train = await make_train()
    one = await first.start(await first.book(train, ["Asha", "Ravi"]))
    two = await second.start(await second.book(train))
    return one, two


async def test_status_summary_matches_the_orm_query(slow_app):
    one, two = await two_attempts(slow_app)
    for txn in (one, two, one):  # the second run reuses the SQL built by the first
        payment = await Payment.get(transaction_id=txn).select_related("booking")
        summary = await status_card.status_summary(payment.user_id, txn)
        assert summary == {
            "transaction_id": txn,
            "status": payment.status.value,
            "booking_id": payment.booking_id,
            "amount": payment.amount,
            "currency": payment.currency,
            "method": payment.method.value,
            "failure_reason": payment.failure_reason,
            "refunded_amount": payment.refunded_amount,
            "gateway": payment.gateway,
            "booking_status": payment.booking.status.value,
            "part_id": payment.part_id,
            "booking_plan": payment.booking.plan,
        }


async def test_status_card_holds_what_the_orm_loads(slow_app):
    one, two = await two_attempts(slow_app)
    for txn, page in ((one, False), (two, False), (one, True), (two, True)):
        full = await Payment.get(transaction_id=txn).select_related("booking__train")
        card = await status_card.owned_payment_with_booking(full.user_id, txn, page=page)
        pairs = {
            Payment: (card, full),
            Booking: (card.booking, full.booking),
            Train: (card.booking.train, full.booking.train),
        }
        shown = status_card._PAGE_COLUMNS if page else status_card._CARD_COLUMNS
        for model, columns in shown.items():
            loaded, expected = pairs[model]
            for column in columns:
                assert getattr(loaded, column) == getattr(expected, column), column
        assert card.booking.active_passengers == full.booking.active_passengers


async def test_only_the_owner_reads_an_attempt(slow_app):
    one, _ = await two_attempts(slow_app)
    owner = (await Payment.get(transaction_id=one)).user_id
    other = (await Payment.filter(user_id__not=owner).first()).user_id
    assert (await status_card.status_summary(owner, one))["transaction_id"] == one
    with pytest.raises(NotFound):
        await status_card.status_summary(other, one)
    with pytest.raises(NotFound):
        await status_card.owned_payment_with_booking(other, one)
    with pytest.raises(NotFound):
        await status_card.owned_payment_with_booking(owner, "TXN0000000000000000")


async def test_sql_that_depends_on_a_value_is_built_each_time(slow_app):
    """None becomes `IS NULL`, not a parameter: that SQL must not serve the next value."""
    one, _ = await two_attempts(slow_app)
    await Payment.filter(transaction_id=one).update(failure_reason="declined")
    by_reason = PreparedRead(
        Payment, lambda reason: Payment.filter(failure_reason=reason).values("transaction_id")
    )
    assert len(await by_reason.rows(None)) == 1
    assert await by_reason.rows("declined") == [{"transaction_id": one}]
    assert len(await by_reason.rows(None)) == 1


async def test_the_layout_badge_counts_each_passengers_unread_notifications(app):
    asha, ravi = await Passenger.sign_up(app), await Passenger.sign_up(app)
    await Notification.bulk_create(
        [Notification(user_id=asha.user_id, kind="info", message=f"note {n}") for n in range(3)]
        + [Notification(user_id=ravi.user_id, kind="info", message="note", read=True)]
    )
    assert 'aria-label="3 unread notifications"' in await asha.text("/")
    assert "unread notifications" not in await ravi.text("/")
    first = await Notification.filter(user_id=asha.user_id).first()
    await Notification.filter(id=first.id).update(read=True)
    assert 'aria-label="2 unread notifications"' in await asha.text("/")


async def test_prepared_models_are_what_the_orm_query_loads(slow_app):
    """`objects`: the same models, related ones and annotations included, call after call."""
    one, two = await two_attempts(slow_app)
    seen_event = "evt_" + "a" * 24
    await WebhookEvent.create(id=seen_event, type="payment.succeeded", transaction_id=one)
    read = PreparedRead(
        Payment,
        lambda event_id, txn: (
            Payment.filter(transaction_id=txn)
            .annotate(seen=Subquery(WebhookEvent.filter(id=event_id).values("id")))
            .select_related("booking__train", "user")
        ),
    )
    for txn, event_id in ((one, seen_event), (two, "evt_new"), (one, "evt_new"), (two, seen_event)):
        [loaded] = await read.objects(event_id, txn)
        full = await Payment.get(transaction_id=txn).select_related("booking__train", "user")
        for model, (got, expected) in {
            Payment: (loaded, full),
            Booking: (loaded.booking, full.booking),
            Train: (loaded.booking.train, full.booking.train),
            User: (loaded.user, full.user),
        }.items():
            for name in model._meta.db_fields:
                assert getattr(got, name) == getattr(expected, name), (model, name)
        assert loaded.seen == (seen_event if event_id == seen_event else None)
    assert read.plans["sqlite" if db.sqlite_in_use() else "postgres"] is not None
    assert await read.objects(seen_event, "TXN0000000000000000") == []


async def test_prepared_models_whose_sql_depends_on_a_value_are_built_each_time(slow_app):
    one, _ = await two_attempts(slow_app)
    await Payment.filter(transaction_id=one).update(failure_reason="declined")
    by_reason = PreparedRead(Payment, lambda reason: Payment.filter(failure_reason=reason))
    assert len(await by_reason.objects(None)) == 1
    assert [p.transaction_id for p in await by_reason.objects("declined")] == [one]
    assert len(await by_reason.objects(None)) == 1
    assert by_reason.plans[next(iter(by_reason.plans))] is None


async def test_a_booking_is_read_only_by_its_owner(slow_app):
    asha, ravi = await Passenger.sign_up(slow_app), await Passenger.sign_up(slow_app)
    booking_id = await asha.book(await make_train())
    for _ in range(2):
        booking = await service.owned_booking(asha.user_id, booking_id)
        assert booking.id == booking_id and booking.train.seats_left >= 0
        with pytest.raises(NotFound):
            await service.owned_booking(ravi.user_id, booking_id)
