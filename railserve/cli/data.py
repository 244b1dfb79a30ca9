"""The commands that set up what the app serves: the schema, trains, operators."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from datetime import UTC, datetime, timedelta

from railserve import config as config_module
from railserve.cli.common import fail, with_db

TRAIN_NUMBER = re.compile(r"[A-Za-z0-9]{1,10}")


def cmd_init_db(args: argparse.Namespace) -> int:
    from railserve import db

    settings = config_module.from_env()
    asyncio.run(db.migrate(settings.database_url))
    print("database is up to date")
    return 0


def parse_departs(raw: str) -> datetime:
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        fail(f"--departs {raw!r} is not an ISO 8601 date and time")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def validate_train(args: argparse.Namespace) -> tuple[datetime, int]:
    from railserve.money import digits, format_amount, known_currency, parse_amount

    if not TRAIN_NUMBER.fullmatch(args.number):
        fail("--number must be 1 to 10 letters or digits")
    for name in ("name", "origin", "destination"):
        value = getattr(args, name).strip()
        if not 0 < len(value) <= 80:
            fail(f"--{name} must be 1 to 80 characters")
    if not 0 < args.seats <= 100_000:
        fail("--seats must be a positive number")
    if not known_currency(args.currency):
        fail(f"--currency {args.currency!r} is not an ISO 4217 currency code, e.g. INR or USD")
    fare = parse_amount(args.fare, args.currency)
    if fare is None or fare <= 0:
        places = ("no decimals", "one decimal", "two decimals", "three decimals")
        fail(
            f"--fare must be a positive amount in {args.currency} with up to "
            f"{places[min(digits(args.currency), 3)]}, e.g. {format_amount(125000, args.currency)}"
        )
    return parse_departs(args.departs), fare


async def add_train(
    number: str,
    name: str,
    origin: str,
    destination: str,
    departs: datetime,
    seats: int,
    fare: int,
    travel_class: str = "3A",
    *,
    currency: str = "INR",
):
    from railserve.models import Train

    return await Train.create(
        travel_class=travel_class,
        number=number.upper(),
        name=name.strip(),
        origin=origin.strip(),
        destination=destination.strip(),
        departs_at=departs,
        total_seats=seats,
        seats_left=seats,
        fare=fare,
        currency=currency,
    )


def cmd_add_train(args: argparse.Namespace) -> int:
    departs, fare = validate_train(args)

    async def work() -> int:
        from railserve.models import Train

        if await Train.exists(number=args.number.upper()):
            fail(f"train {args.number} already exists")
        train = await add_train(
            args.number,
            args.name,
            args.origin,
            args.destination,
            departs,
            args.seats,
            fare,
            args.travel_class,
            currency=args.currency,
        )
        print(f"added train {train.number} (id {train.id})")
        return 0

    return asyncio.run(with_db(work))


DEMO_TRAINS = (
    ("12951", "Rajdhani Express", "Mumbai Central", "New Delhi", 1, 120, 245000, "2A"),
    ("12002", "Shatabdi Express", "New Delhi", "Bhopal", 2, 80, 125000, "CC"),
    ("12627", "Karnataka Express", "Bengaluru", "New Delhi", 3, 60, 98050, "3A"),
    ("22691", "Rajdhani Express", "Bengaluru", "Hazrat Nizamuddin", 4, 2, 310000, "1A"),
    ("12259", "Duronto Express", "Sealdah", "New Delhi", 5, 40, 189900, "3E"),
    ("16526", "Island Express", "Bengaluru", "Kanyakumari", 6, 100, 45000, "SL"),
)


def cmd_seed_demo(args: argparse.Namespace) -> int:
    async def work() -> int:
        from railserve.models import Train

        start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        added = 0
        for number, name, origin, destination, days, seats, fare, cls in DEMO_TRAINS:
            if await Train.exists(number=number):
                continue
            departs = start + timedelta(days=days, hours=6)
            await add_train(number, name, origin, destination, departs, seats, fare, cls)
            added += 1
        print(f"demo trains: {added} added, {len(DEMO_TRAINS) - added} already there")
        return 0

    return asyncio.run(with_db(work))


def cmd_add_operator(args: argparse.Namespace) -> int:
    async def work() -> int:
        from railserve.auth import normalise_email, register_user
        from railserve.errors import DomainError
        from railserve.models import Role, User

        email = normalise_email(args.email)
        if email is None:
            fail("--email is not a valid e-mail address")
        if await User.filter(email=email).update(role=Role.OPERATOR):
            print(f"{email} is now an operator")
            return 0
        password = sys.stdin.readline().rstrip("\r\n")
        try:
            user = await register_user(args.name or email.split("@")[0], email, password)
        except DomainError as error:
            fail("; ".join(error.errors.values()) or error.message)
        await User.filter(id=user.id).update(role=Role.OPERATOR)
        print(f"created operator {email}")
        return 0

    return asyncio.run(with_db(work))
