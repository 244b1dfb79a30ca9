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
from tortoise.router import router


class PreparedRead:
    """`build(*values)`, built once per dialect, run per call.

    The SQL is kept only if its parameters are exactly the values, in order (then it does
    not depend on them); otherwise every call builds its query as usual. `rows` runs a
    `.values()` query: rows come back as the driver returns them (alias -> column value),
    no field conversion. `objects` runs a model query (`select_related` included) and
    returns the models Tortoise's executor makes of the rows, as awaiting it would.
    """

    def __init__(self, model: type[Model], build: Callable[..., ValuesQuery | QuerySet]) -> None:
        self.model = model
        self.build = build
        self.sql: dict[str, str | None] = {}  # dialect -> SQL (None: not reusable)
        # dialect -> (SQL, select_related_idx, annotation names), or None: not reusable
        self.plans: dict[str, tuple[str, list, list[str]] | None] = {}

    async def rows(self, *values: Any) -> list[dict[str, Any]]:
        client, dialect = self._client()
        if dialect not in self.sql:
            sql, params = self._query(client, values).query.get_parameterized_sql()
            self.sql[dialect] = sql if list(params) == list(values) else None
        sql = self.sql[dialect]
        if sql is None:
            sql, params = self._query(client, values).query.get_parameterized_sql()
            return await client.execute_query_dict(sql, params)
        return await client.execute_query_dict(sql, list(values))

    async def objects(self, *values: Any) -> list[Model]:
        client, dialect = self._client()
        if dialect not in self.plans:
            self.plans[dialect] = self._plan(client, values)
        plan = self.plans[dialect]
        if plan is None:
            return await self.build(*values)
        sql, related, annotations = plan
        executor = client.executor_class(model=self.model, db=client, select_related_idx=related)
        return await executor.execute_select(sql, list(values), custom_fields=annotations)

    def _client(self) -> tuple[Any, str]:
        """The connection a read of the model goes to (a transaction's, inside one)."""
        client = router.db_for_read(self.model) or self.model._meta.db
        return client, client.capabilities.dialect

    def _query(self, client: Any, values: tuple) -> ValuesQuery | QuerySet:
        query = self.build(*values)
        query._db = client
        query._make_query()  # what awaiting the query does first
        return query

    def _plan(self, client: Any, values: tuple) -> tuple[str, list, list[str]] | None:
        query = self._query(client, values)
        if query._prefetch_map or query._prefetch_queries or query._single:
            return None  # more than one statement, or not a list: not handled here
        sql, params = query.query.get_parameterized_sql()
        if list(params) != list(values):
            return None
        return sql, query._select_related_idx, list(query._annotations)
