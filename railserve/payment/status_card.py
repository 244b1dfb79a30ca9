"""The status card's reads: the hottest requests (the poll), each one query, its SQL built
once (railserve/prepared.py), reading only the columns the card or the page shows."""

from __future__ import annotations

from tortoise.models import Model

from railserve.errors import NotFound
from railserve.models import Booking, Train
from railserve.payment.models import Payment
from railserve.prepared import PreparedRead
from railserve.store import compat

# The status poll's reads, their SQL built once (railserve/prepared.py): the poll is the
# hottest request and building the query cost more than running it.
_STATUS_SUMMARY = PreparedRead(
    Payment,
    lambda transaction_id, user_id: Payment.filter(
        transaction_id=transaction_id, user_id=user_id
    ).values(
        "transaction_id",
        "status",
        "booking_id",
        "amount",
        "currency",
        "method",
        "failure_reason",
        "refunded_amount",
        "gateway",
        "part_id",
        booking_status="booking__status",
        booking_plan="booking__plan",
    ),
)


async def status_summary(user_id: int, transaction_id: str) -> dict:
    """What the JSON status poll needs, in one query and without building model objects.

    Values are the columns as stored: statuses and the method are their plain strings.
    """
    rows = await _STATUS_SUMMARY.rows(transaction_id, user_id)
    if not rows:
        raise NotFound("No such payment.")
    return rows[0]


# What the status card shows of the attempt, its booking and the train, and what the full
# page adds: only these columns, so the card does not parse timestamps it never shows.
_CARD_COLUMNS: dict[type[Model], tuple[str, ...]] = {
    Payment: (
        "id",
        "transaction_id",
        "booking_id",
        "user_id",
        "method",
        "amount",
        "currency",
        "status",
        "failure_reason",
        "instrument",
        "refunded_amount",
        "part_id",
    ),
    Booking: (
        "id",
        "pnr",
        "user_id",
        "train_id",
        "status",
        "amount",
        "currency",
        "passengers",
        "cancelled_positions",
        "passenger_count",
        "created_at",
        "paid_at",
        "plan",
    ),
    Train: ("id", "number", "name"),
}
_PAGE_COLUMNS = {
    **_CARD_COLUMNS,
    Train: (*_CARD_COLUMNS[Train], "origin", "destination", "departs_at"),
}
_PATHS = {Payment: "", Booking: "booking__", Train: "booking__train__"}


def _joined_read(columns: dict[type[Model], tuple[str, ...]]) -> PreparedRead:
    paths = [_PATHS[model] + column for model, names in columns.items() for column in names]
    return PreparedRead(
        Payment,
        lambda transaction_id, user_id: Payment.filter(
            transaction_id=transaction_id, user_id=user_id
        ).values(*paths),
    )


_STATUS_READS = {False: _joined_read(_CARD_COLUMNS), True: _joined_read(_PAGE_COLUMNS)}


def _part(model: type[Model], columns: tuple[str, ...], row: dict) -> Model:
    """One model of the joined row, converted by its own fields (a partial instance)."""
    prefix = _PATHS[model]
    return compat.model_from_row(model, {column: row[prefix + column] for column in columns})


async def owned_payment_with_booking(
    user_id: int, transaction_id: str, *, page: bool = False
) -> Payment:
    """The attempt with its booking and train: the status card (or `page`), one query.

    The instances hold only the columns the card or the page shows (`_CARD_COLUMNS`,
    `_PAGE_COLUMNS`); they are for reading, never for saving.
    """
    rows = await _STATUS_READS[page].rows(transaction_id, user_id)
    if not rows:
        raise NotFound("No such payment.")
    columns = _PAGE_COLUMNS if page else _CARD_COLUMNS
    payment, booking, train = (_part(model, names, rows[0]) for model, names in columns.items())
    booking.train = train
    payment.booking = booking
    return payment
