"""Reads whose SQL is built once: the status poll runs the same query with new values.

Building a query through Tortoise (pypika copies, joins, quoting) costs more than running
it against an indexed row: it was half of the status poll's own time. A `PreparedRead`
asks Tortoise for the parameterised SQL of its query on first use (per SQL dialect) and
afterwards sends that SQL with the new values. The query stays written with the ORM, so
its SQL is Tortoise's own and follows the models.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tortoise.models import Model
from tortoise.queryset import QuerySet, ValuesQuery

from railserve.store import compat


class PreparedRead:
    """`build(*values)`, built once per dialect, run per call.

    The SQL is kept only if its parameters are exactly the values, in order (then it does
    not depend on them); otherwise every call builds its query as usual. `rows` runs a
    `.values()` query: rows come back as the driver returns them (alias -> column value),
    no field conversion. `objects` runs a model query (`select_related` included) and
    returns the models Tortoise's executor makes of the rows, as awaiting it would. What
    this asks of Tortoise's insides is in railserve/store/compat.py.
    """

    def __init__(self, model: type[Model], build: Callable[..., ValuesQuery | QuerySet]) -> None:
        self.model = model
        self.build = build
        self.sql: dict[str, str | None] = {}  # dialect -> SQL (None: not reusable)
        # dialect -> (SQL, how its rows become models), or None: not reusable
        self.plans: dict[str, tuple[str, compat.ReadShape] | None] = {}

    async def rows(self, *values: Any) -> list[dict[str, Any]]:
        client, dialect = self._client()
        if dialect not in self.sql:
            sql, params = compat.made_sql(self.build(*values), client)
            self.sql[dialect] = sql if list(params) == list(values) else None
        sql = self.sql[dialect]
        if sql is None:
            sql, params = compat.made_sql(self.build(*values), client)
            return await client.execute_query_dict(sql, params)
        return await client.execute_query_dict(sql, list(values))

    async def objects(self, *values: Any) -> list[Model]:
        client, dialect = self._client()
        if dialect not in self.plans:
            self.plans[dialect] = self._plan(client, values)
        plan = self.plans[dialect]
        if plan is None:
            return await self.build(*values)
        sql, shape = plan
        return await compat.models_read(self.model, client, sql, list(values), shape)

    def _client(self) -> tuple[Any, str]:
        """The connection a read of the model goes to (a transaction's, inside one)."""
        client = compat.read_client(self.model)
        return client, client.capabilities.dialect

    def _plan(self, client: Any, values: tuple) -> tuple[str, compat.ReadShape] | None:
        query = self.build(*values)
        sql, params = compat.made_sql(query, client)
        shape = compat.model_read_shape(query)
        if shape is None or list(params) != list(values):
            return None
        return sql, shape
