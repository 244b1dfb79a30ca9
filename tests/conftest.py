"""Shared fixtures: a fresh database per test, the app with its lifespan, and passengers.

The suite runs on SQLite by default and on PostgreSQL when RAILSERVE_TEST_DATABASE_URL
is set to a postgres:// URL (a throwaway database per test, dropped afterwards).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from quart import Quart

from railserve import create_app, running
from railserve.config import Settings
from railserve.models import Train
from tests.support.database import DatabaseFactory
from tests.support.passenger import Passenger, make_train
from tests.support.server import CHEAP_HASHING

WEBHOOK_SECRET = "test-webhook-secret"
SIMUPI_WEBHOOK_SECRET = "test-simupi-secret"


def _written_while_captured():
    """Write the phase's log lines while its output is still captured (the log writes from a
    thread of its own, and pytest lets go of stderr to print each result)."""
    try:
        return (yield)
    finally:
        running.flush_logs()


pytest_runtest_setup = pytest.hookimpl(wrapper=True, trylast=True)(_written_while_captured)
pytest_runtest_call = pytest.hookimpl(wrapper=True, trylast=True)(_written_while_captured)
pytest_runtest_teardown = pytest.hookimpl(wrapper=True, trylast=True)(_written_while_captured)


@pytest.fixture(scope="session")
def database_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabaseFactory]:
    factory = DatabaseFactory(tmp_path_factory.mktemp("databases"))
    yield factory
    factory.drop_all()


@pytest.fixture
def database_url(database_factory: DatabaseFactory) -> str:
    return database_factory.new_url()


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Fast, deterministic settings: no gateway delay, no rate limits, no background sweep,
    cheap password hashes (argon2 at full cost is most of a sign-up's time)."""
    return Settings(
        database_url=database_url,
        secret_key="test-secret-key",
        webhook_secret=WEBHOOK_SECRET,
        simupi_webhook_secret=SIMUPI_WEBHOOK_SECRET,
        gateway_delay=0.0,
        gateway_seed="test-seed",
        rate_limits=False,
        sweep_interval=0,
        test_mode=True,
        password_time_cost=CHEAP_HASHING["password_time_cost"],
        password_memory_cost=CHEAP_HASHING["password_memory_cost"],
    ).finalised()


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Quart]:
    application = create_app(settings)
    async with application.test_app():
        yield application


@pytest.fixture
async def slow_app(settings: Settings) -> AsyncIterator[Quart]:
    """The app with a gateway that takes 30 s: attempts stay pending for the whole test."""
    application = create_app(replace(settings, gateway_delay=30.0))
    async with application.test_app():
        yield application


@pytest.fixture
def app_with():
    """Build an app with changed settings: `async with app_with(settings, gateway_delay=1) as app`."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def build(base: Settings, **changes):
        application = create_app(replace(base, **changes))
        async with application.test_app():
            yield application

    return build


@pytest.fixture
async def passenger(app: Quart) -> Passenger:
    """A registered, signed-in passenger."""
    return await Passenger.sign_up(app)


@pytest.fixture
def new_passenger(app: Quart):
    async def make(**kw) -> Passenger:
        return await Passenger.sign_up(app, **kw)

    return make


@pytest.fixture
async def train(app: Quart) -> Train:
    return await make_train()


@pytest.fixture
def artifacts_dir() -> Path:
    path = Path(__file__).resolve().parent.parent / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path
