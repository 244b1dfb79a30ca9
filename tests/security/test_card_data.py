"""No card data kept: not in the database, not in the logs, not in any page, not echoed back.

PRODUCT.md: the masked instrument (card last four) is all that is stored; never a full
card number or CVV, not even in logs.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from tortoise import Tortoise

from tests.support.database import sqlite_path
from tests.support.passenger import CARD_OK, HX, JSON, Passenger, card, make_train

CVV = "739"
CARD_FORMS = (CARD_OK, CARD_OK.replace(" ", ""), CARD_OK.replace(" ", "-"))
# The CVV next to anything naming it, or as a form value: three digits alone are too common.
CVV_IN_CONTEXT = re.compile(rb"(cvv|cvc|csc|security code)\W{0,24}" + CVV.encode(), re.IGNORECASE)
CVV_AS_VALUE = re.compile(rb"value=[\"']?" + CVV.encode())


def leaks(data: bytes) -> list[str]:
    found = [number for number in CARD_FORMS if number.encode() in data]
    found += [m.group(0).decode(errors="replace") for m in CVV_IN_CONTEXT.finditer(data)]
    found += [m.group(0).decode(errors="replace") for m in CVV_AS_VALUE.finditer(data)]
    return found


async def database_bytes(database_url: str) -> bytes:
    """The SQLite files as stored (freed pages and the WAL included), or every row of
    every PostgreSQL table as text."""
    path = sqlite_path(database_url)
    if path is not None:
        files = [path, Path(f"{path}-wal"), Path(f"{path}-journal")]
        return b"".join(file.read_bytes() for file in files if file.exists())
    connection = Tortoise.get_connection("default")
    tables = await connection.execute_query_dict(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
    )
    dump = []
    for table in tables:
        rows = await connection.execute_query_dict(
            f'SELECT t::text AS row FROM "{table["tablename"]}" t'
        )
        dump.extend(row["row"] for row in rows)
    return "\n".join(dump).encode()


async def test_a_paid_card_leaves_only_its_last_four(settings, app_with, caplog):
    caplog.set_level(logging.DEBUG)
    bodies: list[bytes] = []
    # Test mode lists the trigger card numbers on the pay page; without it any number in a
    # page came from the passenger. The simulator honours the triggers either way.
    async with app_with(settings, gateway="simulated", test_mode=False) as app:
        train = await make_train()
        person = await Passenger.sign_up(app)
        booking_id = await person.book(train)
        # A wrong expiry first: the form comes back without the card number or CVV.
        form = {**await person.pay_form(booking_id), **card(card_cvv=CVV, card_expiry="13/99")}
        for htmx in (False, True):
            rejected = await person.post(f"/payment/process/{booking_id}", form, htmx=htmx)
            assert rejected.status_code == 422
            body = await rejected.get_data()
            assert b"Enter the expiry date as MM/YY." in body
            assert b"Asha Rao" in body  # harmless fields are kept for the retry...
            assert leaks(body) == []  # ...the card number and CVV are not
            bodies.append(body)

        final = await person.pay(booking_id, card(card_cvv=CVV))
        assert final["status"] == "success"
        txn = final["transaction_id"]
        hyphenated = await person.book(train)
        second = await person.pay(hyphenated, card(CARD_FORMS[2], card_cvv=CVV))
        assert second["status"] == "success"

        for path, headers in [
            (f"/payment/status/{txn}", None),
            (f"/payment/status/{txn}", HX),
            (f"/payment/status/{txn}", JSON),
            (f"/payment/receipt/{txn}", None),
            ("/profile", None),
            ("/", None),
        ]:
            response = await person.get(path, headers)
            assert response.status_code == 200, path
            bodies.append(await response.get_data())
        receipt = bodies[-3].decode()
        assert "4242" in receipt  # the masked instrument is what the passenger sees

        stored = await database_bytes(settings.database_url)
        assert b"4242" in stored  # the last four are kept...
        assert leaks(stored) == []  # ...and nothing more
    logged = "\n".join(
        f"{record.getMessage()} {record.args!r} {record.exc_text or ''}"
        for record in caplog.records
    ).encode()
    assert caplog.records, "expected the app and ORM to log at DEBUG"
    assert leaks(logged) == []
    for body in bodies:
        assert leaks(body) == []
