"""The main path, end to end through the test client: book, pay, decline, retry."""

from railserve.models import Booking, Train
from tests.support.passenger import CARD_DECLINED, card


async def test_book_pay_confirms_and_takes_seats(passenger, train):
    booking_id = await passenger.book(train, ["Asha Rao", "Vikram Rao"])
    final = await passenger.pay(booking_id)
    assert final["status"] == "success"
    assert final["booking_status"] == "confirmed"
    assert final["amount"] == "2500.00"
    assert (await Train.get(id=train.id)).seats_left == train.seats_left - 2


async def test_decline_then_retry(passenger, train):
    booking_id = await passenger.book(train)
    failed = await passenger.pay(booking_id, card(CARD_DECLINED))
    assert failed["status"] == "failed"
    assert failed["failure_reason"] == "Card declined"
    assert (await Booking.get(id=booking_id)).status == "pending_payment"
    retried = await passenger.pay(booking_id)
    assert retried["status"] == "success"
    assert retried["transaction_id"] != failed["transaction_id"]
