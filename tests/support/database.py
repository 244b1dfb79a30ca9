"""Fresh databases for tests: a migrated template, copied for each test.

SQLite by default; PostgreSQL when RAILSERVE_TEST_DATABASE_URL=postgres://… is set (each
test gets `CREATE DATABASE … TEMPLATE …`, dropped afterwards).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from railserve import db

BASE_URL = os.environ.get("RAILSERVE_TEST_DATABASE_URL", "")


def using_postgres() -> bool:
    return BASE_URL.startswith(("postgres://", "postgresql://"))


def _with_db(url: str, name: str) -> str:
    parts = urlsplit(url.replace("postgresql://", "postgres://", 1))
    return urlunsplit(parts._replace(path="/" + name))


async def _pg(url: str, *statements: str) -> None:
    import asyncpg

    parts = urlsplit(url)
    conn = await asyncpg.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password,
        database="postgres",
    )
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


class DatabaseFactory:
    """Makes migrated databases quickly, and removes them afterwards."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.prefix = f"rs_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.template: str | None = None
        self.made: list[str] = []

    def _template(self) -> str:
        if self.template is None:
            if using_postgres():
                name = f"{self.prefix}_tmpl"
                asyncio.run(_pg(BASE_URL, f'CREATE DATABASE "{name}"'))
                self.made.append(name)
                self.template = name
                asyncio.run(db.migrate(_with_db(BASE_URL, name)))
            else:
                path = self.workdir / "template.sqlite3"
                asyncio.run(db.migrate(f"sqlite://{path}"))
                self.template = str(path)
        return self.template

    def new_url(self) -> str:
        template = self._template()
        name = f"{self.prefix}_{uuid.uuid4().hex[:8]}"
        if using_postgres():
            asyncio.run(_pg(BASE_URL, f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
            self.made.append(name)
            return _with_db(BASE_URL, name)
        path = self.workdir / f"{name}.sqlite3"
        shutil.copyfile(template, path)
        return f"sqlite://{path}"

    def new_empty_url(self) -> str:
        """A database with no schema at all (for tests of the migrations themselves)."""
        name = f"{self.prefix}_{uuid.uuid4().hex[:8]}"
        if using_postgres():
            asyncio.run(_pg(BASE_URL, f'CREATE DATABASE "{name}"'))
            self.made.append(name)
            return _with_db(BASE_URL, name)
        return f"sqlite://{self.workdir / f'{name}.sqlite3'}"

    def drop_all(self) -> None:
        if using_postgres() and self.made:
            drops = [
                f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in reversed(self.made)
            ]
            asyncio.run(_pg(BASE_URL, *drops))


def sqlite_path(url: str) -> Path | None:
    return Path(urlsplit(url).path) if url.startswith("sqlite://") else None
