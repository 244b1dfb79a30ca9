"""The assumptions of railserve/limits_compat.py, each checked against the installed
quart-rate-limiter: one failing after an upgrade names what `limits.SharedLimiter` must
rework before a shared limit silently stops counting."""

from __future__ import annotations

from datetime import timedelta

from quart import Quart
from quart_rate_limiter import RateLimiter, rate_exempt, rate_limit

from railserve.limits_compat import Limiter


def limited_app() -> tuple[Quart, Limiter, list[str]]:
    app = Quart(__name__)
    checked: list[str] = []

    class Recording(Limiter):
        async def check_request(self) -> None:
            checked.append("ours")
            await super().check_request()

    limiter = Recording(app)

    async def one_client() -> str:
        return "client-1"

    @app.get("/limited")
    @rate_limit(1, timedelta(minutes=1), key_function=one_client)
    async def limited() -> str:
        return "ok"

    @app.get("/exempt")
    @rate_exempt
    async def exempt() -> str:
        return "ok"

    return app, limiter, checked


async def test_the_limiter_checks_each_request_through_the_hook_it_registers():
    app, _, checked = limited_app()
    client = app.test_client()
    assert (await client.get("/limited")).status_code == 200
    # The limiter's own check still runs (and counts) from `check_request`: a second
    # request within the minute is refused.
    assert (await client.get("/limited")).status_code == 429
    assert checked == ["ours", "ours"]


async def test_the_limits_a_view_has_and_the_key_each_is_counted_under():
    app, limiter, _ = limited_app()
    async with app.test_request_context("/limited"):
        (limit,) = limiter.limits_for(app.view_functions["limited"], None)
        assert (limit.count, limit.period) == (1, timedelta(minutes=1))
        assert limiter.limits_for(app.view_functions["exempt"], None) == []
        assert await limiter.skipped(limit) is False
        key = await limiter.key_for("limited", limit)
        assert "limited" in key and "client-1" in key


def test_the_private_names_are_still_there():
    for name in ("_before_request", "_get_limits_for_view_function", "_should_skip", "_create_key"):
        assert callable(getattr(RateLimiter, name, None)), f"RateLimiter.{name} is gone"
