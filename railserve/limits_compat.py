"""Every private name of quart-rate-limiter that RailServe relies on, in one place.

`limits.SharedLimiter` checks and counts all the limits of a request in one Redis script
instead of the limiter's two steps per limit. To do so it replaces the limiter's check of
each request (`_before_request`, the hook `RateLimiter.init_app` registers with the app),
and asks the limiter which limits apply to a view (`_get_limits_for_view_function`,
`_should_skip`) and under which key each is counted (`_create_key`). `Limiter` gives those
public names; nothing else touches the private ones. Pinned: quart-rate-limiter 0.12.x.
tests/test_limits_compat.py checks each assumption and fails, naming it, the day an
upgrade breaks one.
"""

from __future__ import annotations

from collections.abc import Callable

from quart import Blueprint
from quart_rate_limiter import RateLimit, RateLimiter


class Limiter(RateLimiter):
    """quart-rate-limiter's limiter, with its check of a request and its helpers under
    public names: a subclass overrides `check_request`."""

    async def _before_request(self) -> None:  # the hook RateLimiter.init_app registers
        await self.check_request()

    async def check_request(self) -> None:
        """The limiter's own check, counted in its store (this worker's memory)."""
        await RateLimiter._before_request(self)

    def limits_for(self, view: Callable, blueprint: Blueprint | None) -> list[RateLimit]:
        """The limits on `view` (its own, its blueprint's, the defaults; none if exempt)."""
        return self._get_limits_for_view_function(view, blueprint)

    async def skipped(self, limit: RateLimit) -> bool:
        """Whether the limit's skip function lets this request through uncounted."""
        return await self._should_skip(limit)

    async def key_for(self, endpoint: str, limit: RateLimit) -> str:
        """The key this request is counted under for `limit` on `endpoint`."""
        return await self._create_key(endpoint, limit)
