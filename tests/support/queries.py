"""Count the SQL statements a block of code sends, to prove a page has no N+1."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from tortoise import connections

METHODS = ("execute_query", "execute_query_dict", "execute_insert", "execute_many")


class QueryCount:
    def __init__(self) -> None:
        self.statements: list[str] = []

    def __len__(self) -> int:
        return len(self.statements)


@contextlib.contextmanager
def count_queries() -> Iterator[QueryCount]:
    """Every statement sent through the default connection's class while the block runs."""
    client_class = type(connections.get("default"))
    counter = QueryCount()
    originals = {name: getattr(client_class, name) for name in METHODS}

    def wrap(name: str):
        original = originals[name]

        async def counted(self, query, *args, **kwargs):
            counter.statements.append(str(query))
            return await original(self, query, *args, **kwargs)

        return counted

    for name in METHODS:
        setattr(client_class, name, wrap(name))
    try:
        yield counter
    finally:
        for name, original in originals.items():
            setattr(client_class, name, original)
