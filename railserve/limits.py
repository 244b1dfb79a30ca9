"""Rate limits per client address and per account, on the doors people knock on.

Defaults leave a person's normal pace alone; RAILSERVE_RATE_LIMITS=off lifts them for
load tests. The counts (per minute) come from Settings (`rate_limit_*`, environment
`RAILSERVE_RATE_LIMIT_*`), read from the running app, so one process can hold apps with
different limits (tests set low ones). Counts live in one process (per worker).
Client addresses are the socket's peer: behind a proxy, configure the server to pass the
real address on (Hypercorn's ProxyFixMiddleware), or every client shares one budget.
"""

from __future__ import annotations

from datetime import timedelta

from quart import current_app, request
from quart_auth import current_user
from quart_rate_limiter import KeyCallable, RateLimit, rate_limit

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


class ConfiguredLimit(RateLimit):
    """A per-minute limit on POSTs whose count is a field of the running app's Settings."""

    def __init__(self, setting: str, key_function: KeyCallable) -> None:
        # RateLimit is a dataclass with a plain `count`; ours is read per request instead.
        self.setting = setting
        self.period = MINUTE
        self.key_function = key_function
        self.skip_function = _reads_only

    @property  # type: ignore[override]
    def count(self) -> int:
        return int(getattr(current_app.config["RAILSERVE"], self.setting))


login_limits = rate_limit(
    limits=[
        ConfiguredLimit("rate_limit_login_per_address", _by_address),
        ConfiguredLimit("rate_limit_login_per_account", _by_email),
    ]
)
register_limits = rate_limit(
    limits=[ConfiguredLimit("rate_limit_register_per_address", _by_address)]
)
payment_limits = rate_limit(
    limits=[
        ConfiguredLimit("rate_limit_payment_per_user", _by_user),
        ConfiguredLimit("rate_limit_payment_per_address", _by_address),
    ]
)

# Operators act on other people's money: a steady hand, not a script gone wrong.
operator_limits = rate_limit(
    limits=[RateLimit(60, MINUTE, key_function=_by_user, skip_function=_reads_only)]
)
