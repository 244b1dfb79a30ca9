"""Rate limits shared through Redis (RAILSERVE_REDIS_URL): exact across workers.

A real `redis-server` on a free port for the module (CI installs Debian's; without it
these tests are skipped with a note). Logins per address are the limit under test: the
limiter refuses before any password is hashed, so the counts are cheap to reach.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from railserve.config import ConfigError, from_env
from tests.concurrency.web import WebPassenger
from tests.security.helpers import post_form
from tests.security.test_rate_limits import LOW, assert_limited
from tests.support.database import DatabaseFactory
from tests.support.passenger import Passenger
from tests.support.server import LiveServer, free_port

REDIS_SERVER = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(
    REDIS_SERVER is None, reason="redis-server is not installed (apt-get install redis-server)"
)


@pytest.fixture(scope="module")
def redis_server() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [
            REDIS_SERVER,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            *("--save", "", "--appendonly", "no"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            break
        time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(10)


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """Each test starts from empty counts."""
    import redis

    client = redis.Redis.from_url(redis_server)
    client.flushdb()
    client.close()
    return redis_server


async def _wrong_login(person: Passenger, address: str):
    form = {"email": "nobody@example.com", "password": "guess-guess"}
    return await post_form(person.client, "/auth/login", form, token=person.csrf, address=address)


async def test_a_burst_of_concurrent_attempts_gets_exactly_the_limit(settings, app_with, redis_url):
    async with app_with(
        settings, **{**LOW, "rate_limit_login_per_address": 5}, redis_url=redis_url
    ) as app:
        guesser = await Passenger.sign_up(app)
        answers = await asyncio.gather(*(_wrong_login(guesser, "10.9.0.1") for _ in range(20)))
        codes = sorted(answer.status_code for answer in answers)
        # Five got through to the password check (and were wrong); the rest were held back.
        assert codes == [401] * 5 + [429] * 15
        await assert_limited(await _wrong_login(guesser, "10.9.0.1"))
        # The count is per address: another one starts afresh.
        assert (await _wrong_login(guesser, "10.9.0.2")).status_code == 401


async def test_without_redis_a_worker_still_limits_on_its_own(settings, app_with, caplog):
    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    async with app_with(
        settings, **{**LOW, "rate_limit_login_per_address": 3}, redis_url=unreachable
    ) as app:
        guesser = await Passenger.sign_up(app)
        codes = [(await _wrong_login(guesser, "10.9.1.1")).status_code for _ in range(3)]
        assert codes == [401, 401, 401]  # served, not a 500
        await assert_limited(await _wrong_login(guesser, "10.9.1.1"))
    assert "Redis unreachable" in caplog.text


def test_the_redis_url_must_be_a_redis_url():
    with pytest.raises(ConfigError, match="RAILSERVE_REDIS_URL"):
        from_env({"RAILSERVE_REDIS_URL": "http://127.0.0.1:6379"}).finalised()


@pytest.fixture
def two_servers(database_factory: DatabaseFactory, redis_url: str) -> Iterator[list[LiveServer]]:
    """Two server processes on one database and one Redis (two workers, or two hosts).

    Made outside the test's event loop: a PostgreSQL test database is made with its own.
    """
    limits = {"rate_limits": "on", "redis_url": redis_url, "rate_limit_login_per_address": "6"}
    database = database_factory.new_url()
    servers = [LiveServer(database, **limits).start() for _ in range(2)]
    yield servers
    for server in servers:
        server.stop()


@pytest.mark.server
async def test_two_servers_share_one_count(two_servers: list[LiveServer]):
    person = WebPassenger(two_servers[0].url, "nobody@example.com")
    await person.refresh_csrf("/auth/login")
    form = {"email": "nobody@example.com", "password": "guess-guess", "csrf_token": person.csrf}

    async def attempt(n: int) -> int:
        # Each on its own connection, alternating between the two servers.
        async with httpx.AsyncClient(
            base_url=two_servers[n % 2].url, cookies=person.client.cookies, timeout=30
        ) as client:
            return (await client.post("/auth/login", data=form)).status_code

    codes = await asyncio.gather(*(attempt(n) for n in range(24)))
    await person.client.aclose()
    # Six through to the password check, on whichever server; the other 18 held back.
    assert sorted(codes) == [401] * 6 + [429] * 18
