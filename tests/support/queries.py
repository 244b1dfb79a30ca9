"""Count the SQL statements the app sends, to hold hot paths to a query budget.

Wraps the execute methods of the default connection's client class (and its transaction
wrapper), so statements inside and outside transactions are counted alike, and watches
the statements of SQLite's one-call transactions (`railserve.batch`). BEGIN and
COMMIT are not statements of ours and are not counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from tortoise import connections

from railserve import store

METHODS = (
    "execute_query",
    "execute_query_dict",
    "execute_insert",
    "execute_many",
    "execute_script",
)


@dataclass
class QueryLog:
    statements: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.statements)

    def __len__(self) -> int:
        return len(self.statements)

    def __str__(self) -> str:
        return f"{self.count} queries:\n" + "\n".join(f"  {s[:200]}" for s in self.statements)

    __repr__ = __str__


def _classes(base: type) -> Iterator[type]:
    yield base
    for sub in base.__subclasses__():
        yield from _classes(sub)


@contextmanager
def count_queries() -> Iterator[QueryLog]:
    """Every statement sent through the default connection, by any task, within the block."""
    log = QueryLog()
    patched: list[tuple[type, str, object]] = []
    for cls in _classes(type(connections.get("default"))):
        for name in METHODS:
            original = cls.__dict__.get(name)
            if original is None:
                continue

            def wrap(original=original):
                async def counted(self, query, *args, **kwargs):
                    log.statements.append(str(query))
                    return await original(self, query, *args, **kwargs)

                return counted

            setattr(cls, name, wrap())
            patched.append((cls, name, original))
    # The money steps' executors (railserve.store) send their statements themselves.
    store.OBSERVERS.append(log.statements.append)
    try:
        yield log
    finally:
        store.OBSERVERS.remove(log.statements.append)
        for cls, name, original in reversed(patched):
            setattr(cls, name, original)
