"""Rate limits per client address and per account, on the doors people knock on.

Defaults leave a person's normal pace alone; RAILSERVE_RATE_LIMITS=off lifts them for
load tests. Counts live in one process (per worker).
"""

from __future__ import annotations

from datetime import timedelta

from quart import request
from quart_auth import current_user
from quart_rate_limiter import RateLimit, rate_limit

MINUTE = timedelta(minutes=1)


async def _by_address() -> str:
    return "addr:" + (request.remote_addr or "unknown")


async def _by_user() -> str:
    return "user:" + str(current_user.auth_id or request.remote_addr)


async def _by_email() -> str:
    form = await request.form
    return "email:" + form.get("email", "").strip().lower()[:254]


async def _reads_only() -> bool:
    return request.method != "POST"


login_limits = rate_limit(
    limits=[
        RateLimit(30, MINUTE, _by_address, _reads_only),
        RateLimit(10, MINUTE, _by_email, _reads_only),
    ]
)
register_limits = rate_limit(limits=[RateLimit(60, MINUTE, _by_address, _reads_only)])
payment_limits = rate_limit(
    limits=[
        RateLimit(30, MINUTE, _by_user, _reads_only),
        RateLimit(120, MINUTE, _by_address, _reads_only),
    ]
)
