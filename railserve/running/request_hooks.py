"""Request ids, and what every request does besides its own work: count it, time it, and
write its line.

The request id lives in a context variable, so every line written while a request runs
carries it (logs.py copies it onto each record before the record leaves the event loop).
This is the status poll's hot path: nothing here may cost more than a few microseconds.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from contextvars import ContextVar

from quart import Response, g, request
from quart_auth import current_user

from railserve.running import lines
from railserve.running.metrics import metrics

log = logging.getLogger("railserve.request")

REQUEST_ID: ContextVar[str | None] = ContextVar("railserve_request_id", default=None)
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
UNMATCHED = "unmatched"  # the endpoint label of a request no route took (404, 405)
# Where quart-auth keeps the request's user once it has read the cookie (its default; the
# app sets it from QUART_AUTH_ATTRIBUTE_NAME).
auth_attribute = "_quart_auth_user"


def request_id() -> str | None:
    return REQUEST_ID.get()


def with_request_id(detail: str, limit: int = 300) -> str:
    """An audit row's detail with the id of the request that writes it (when there is one),
    so that an operator can go from the audit trail to the request's log lines."""
    rid = REQUEST_ID.get()
    if rid is None or not isinstance(detail, str) or rid in detail:
        return detail
    suffix = f" [request {rid}]"
    return detail[: limit - len(suffix)] + suffix


# Made ids: this process's random prefix and a counter, unique across workers and hosts
# without a system call per request (ids are for finding lines, not secrets).
_ID_PREFIX = os.urandom(6).hex()
_id_counter = itertools.count(1)
# When the request began (perf_counter), beside its id: one context variable each, no `g`.
_STARTED: ContextVar[float] = ContextVar("railserve_request_started", default=0.0)


def _new_prefix() -> None:
    global _ID_PREFIX
    _ID_PREFIX = os.urandom(6).hex()  # a forked worker must not repeat its parent's ids


os.register_at_fork(after_in_child=_new_prefix)


async def begin_request() -> None:
    """Keep the client's X-Request-ID when it is well formed, else make one."""
    sent = request.headers.get("X-Request-ID")
    if sent is None or not REQUEST_ID_PATTERN.fullmatch(sent):
        sent = f"{_ID_PREFIX}{next(_id_counter):08x}"
    REQUEST_ID.set(sent)
    _STARTED.set(time.perf_counter())


async def end_request(response: Response) -> Response:
    """Echo the request id, count the answer, and hand the request's line to the log."""
    elapsed = time.perf_counter() - _STARTED.get()
    response.headers["X-Request-ID"] = REQUEST_ID.get() or ""
    current = request._get_current_object()  # one proxy lookup, not one per attribute
    rule = current.url_rule
    endpoint = rule.endpoint if rule is not None else UNMATCHED
    code = response.status_code
    counter, histogram = metrics().request_children(endpoint, code)
    counter.inc()
    histogram.observe(elapsed)
    if log.isEnabledFor(logging.INFO):
        # The user as quart-auth has read it already (it reads it for every response);
        # through `current_user` only when nothing has yet.
        user = getattr(g._get_current_object(), auth_attribute, None)
        user_id = (user if user is not None else current_user).auth_id
        method = current.method
        # Every part of the message is a route name or a number. The formatter (on the
        # log's own thread) reads `fields`, and rounds the duration.
        lines.write(
            log,
            "%s %s %s %.1fms",
            (method, endpoint, code, elapsed * 1000),
            {
                "method": method,
                "endpoint": endpoint,
                "status": code,
                "duration_ms": elapsed * 1000,
                "user_id": int(user_id) if user_id is not None else None,
            },
        )
    return response
