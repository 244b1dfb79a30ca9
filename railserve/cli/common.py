"""What every `railserve` command shares: failing with a message, running on the database.

The heavy parts (Tortoise, the password hasher, Babel) are imported when a command runs,
not when the parser is built. (`railserve --help` still loads them: importing any
`railserve.*` module runs the package's `__init__`, which is the app factory.)
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable

from railserve import config as config_module


def fail(message: str) -> None:
    print(f"railserve: {message}", file=sys.stderr)
    raise SystemExit(2)


async def with_db(work: Callable[[], Awaitable[int | None]]) -> int:
    from railserve import auth, db, display

    settings = config_module.from_env()
    display.configure(settings.locale, settings.timezone)
    auth.configure_hashing(settings.password_time_cost, settings.password_memory_cost)
    await db.init(settings.database_url)
    try:
        return (await work()) or 0
    finally:
        await db.close()
