"""Rate limits per client address and per account, on the doors people knock on.

Defaults leave a person's normal pace alone; RAILSERVE_RATE_LIMITS=off lifts them for
load tests. The counts (per minute) come from Settings (`rate_limit_*`, environment
`RAILSERVE_RATE_LIMIT_*`), read from the running app, so one process can hold apps with
different limits (tests set low ones).

Where the counts live: without RAILSERVE_REDIS_URL, in each worker's memory (with N
workers a client may get up to N times a limit). With it, in Redis, shared by every
worker and host, and exact: each request's limits are checked and counted by one Redis
script (GCRA, on Redis's clock), so concurrent requests cannot both take the last slot —
quart-rate-limiter's own Redis store reads and writes in two steps and can. If Redis
cannot be reached, a worker falls back to its own memory and logs it, rather than refusing
everyone or answering 500.
Client addresses are the socket's peer: behind a proxy, configure the server to pass the
real address on (Hypercorn's ProxyFixMiddleware), or every client shares one budget.
"""

from __future__ import annotations

import logging
import math
import time
from datetime import UTC, datetime, timedelta

from quart import Quart, current_app, request
from quart_auth import current_user
from quart_rate_limiter import (
    KeyCallable,
    RateLimit,
    RateLimiter,
    RateLimitExceeded,
    rate_limit,
)
from quart_rate_limiter.store import MemoryStore
from redis import asyncio as aioredis
from redis.exceptions import RedisError

from railserve.bounds import EMAIL_MAX
from railserve.limits_compat import Limiter

log = logging.getLogger(__name__)

MINUTE = timedelta(minutes=1)
FALLBACK_LOG_EVERY = 60.0  # seconds between two "Redis unreachable" warnings of a worker

# GCRA over several limits at once, all or nothing. KEYS: one per limit. ARGV: for each
# limit its emission interval and its burst allowance (period - interval), in ms. Returns
# -1 when the request is allowed (every key advanced), else the ms to wait.
TAKE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local tats = {}
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i - 1])
  local allowance = tonumber(ARGV[2 * i])
  local tat = math.max(tonumber(redis.call('GET', KEYS[i]) or now), now)
  if tat - now > allowance then
    return tat - allowance - now
  end
  tats[i] = tat + interval
end
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], tats[i], 'PX', tats[i] - now + 1000)
end
return -1
"""


async def _by_address() -> str:
    return "addr:" + (request.remote_addr or "unknown")


async def _by_user() -> str:
    return "user:" + str(current_user.auth_id or request.remote_addr)


async def _by_email() -> str:
    form = await request.form
    return "email:" + form.get("email", "").strip().lower()[:EMAIL_MAX]


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


class SharedStore(MemoryStore):
    """Counts in Redis for every worker; the worker's memory while Redis is unreachable.

    `get` serves the library's `RateLimit-*` response headers; `take` is the check.
    """

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.redis: aioredis.Redis | None = None
        self._take = None
        self._warned_at = -FALLBACK_LOG_EVERY

    async def before_serving(self) -> None:
        self.redis = aioredis.from_url(self.url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self._take = self.redis.register_script(TAKE)

    async def after_serving(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
            self.redis = None

    async def get(self, key: str, default: datetime) -> datetime:
        try:
            stored = await self.redis.get(key)
        except RedisError:
            return await super().get(key, default)
        if stored is None:
            return default
        return datetime.fromtimestamp(int(stored) / 1000, UTC)

    async def take(self, keys: list[str], limits: list[RateLimit]) -> float | None:
        """Count one request against every limit, or none: seconds to wait when refused."""
        args: list[int] = []
        for limit in limits:
            interval = round(limit.inverse * 1000)
            args += [interval, round(limit.period.total_seconds() * 1000) - interval]
        wait = await self._take(keys=keys, args=args)
        return None if wait < 0 else wait / 1000

    def unreachable(self, error: RedisError) -> None:
        now = time.monotonic()
        if now - self._warned_at >= FALLBACK_LOG_EVERY:
            self._warned_at = now
            log.warning("rate limits: Redis unreachable (%s); counting in this worker", error)


class SharedLimiter(Limiter):
    """quart-rate-limiter with every limit of a request taken in one Redis script."""

    store: SharedStore

    async def check_request(self) -> None:
        if not current_app.config["QUART_RATE_LIMITER_ENABLED"]:
            return
        view = current_app.view_functions.get(request.endpoint)
        if view is None:
            return
        blueprint = current_app.blueprints.get(request.blueprint)
        limits = [
            limit for limit in self.limits_for(view, blueprint) if not await self.skipped(limit)
        ]
        if not limits:
            return
        keys = [await self.key_for(request.endpoint, limit) for limit in limits]
        try:
            wait = await self.store.take(keys, limits)
        except RedisError as error:
            self.store.unreachable(error)
            await super().check_request()  # the same limits, in this worker's memory
            return
        if wait is not None:
            raise RateLimitExceeded(max(1, math.ceil(wait)))


def init_app(app: Quart, *, enabled: bool, redis_url: str) -> None:
    """Rate limits for the app: shared through Redis when a URL is given, else per worker."""
    if redis_url:
        SharedLimiter(app, store=SharedStore(redis_url), enabled=enabled)
    else:
        RateLimiter(app, enabled=enabled)
