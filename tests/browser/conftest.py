"""Real-browser fixtures: Debian's Chromium driven by Playwright against `railserve serve`.

One server (Hypercorn, a fresh database, a visible gateway delay) and one browser serve
the whole package; every test gets its own browser contexts, so its own users and cookies.
Every page a test opens is watched for console errors, which fail the test.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.database import DatabaseFactory
from tests.support.server import LiveServer, railserve

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
# Long enough to see the pending state, short enough to keep the suite quick.
GATEWAY_DELAY = "1.0"


@pytest.fixture(scope="package", autouse=True)
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        pytest.skip(
            f"real-browser tests need Debian's Chromium at {CHROMIUM} "
            "(apt-get install -y chromium); never `playwright install`"
        )
    return CHROMIUM


@pytest.fixture(scope="package")
def browser(chromium_path: Path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(chromium_path), args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


def start_server(database_factory: DatabaseFactory, **settings: str) -> LiveServer:
    # Playwright's sync API keeps an event loop running in this thread, and the factory
    # uses asyncio.run: make the database in a thread of its own.
    with ThreadPoolExecutor(1) as pool:
        database_url = pool.submit(database_factory.new_url).result()
    settings.setdefault("gateway_delay", GATEWAY_DELAY)
    return LiveServer(database_url, **settings).start()


@pytest.fixture(scope="package")
def live_server(database_factory: DatabaseFactory) -> Iterator[LiveServer]:
    server = start_server(database_factory)
    yield server
    server.stop()


def add_train(server: LiveServer, seats: int = 100, fare: str = "1250.00") -> str:
    """Add a train the way an operator does, with `railserve add-train`; return its number."""
    number = "T" + uuid.uuid4().hex[:7].upper()
    done = railserve(
        "add-train",
        "--number",
        number,
        "--name",
        "Deccan Queen",
        "--origin",
        "Mumbai CSMT",
        "--destination",
        "Pune Junction",
        "--departs",
        "2031-05-04T07:15:00",
        "--seats",
        str(seats),
        "--fare",
        fare,
        env=server.env,
    )
    assert done.returncode == 0, done.stderr
    return number


@pytest.fixture
def server(live_server: LiveServer) -> LiveServer:
    """The server a test talks to; a module may override it (e.g. a slower gateway)."""
    return live_server


@pytest.fixture
def train(server: LiveServer) -> str:
    return add_train(server)


@pytest.fixture
def screenshot() -> Callable:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str) -> Path:
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture
def traveller(browser, server: LiveServer):
    """Make travellers: `traveller(javascript=False, viewport=...)`; no console errors allowed."""
    from tests.browser.traveller import Traveller

    made: list[Traveller] = []

    def make(**options) -> Traveller:
        person = Traveller(browser, server.url, **options)
        made.append(person)
        return person

    yield make
    errors = [error for person in made for error in person.errors]
    for person in made:
        person.close()
    assert not errors, f"browser console errors: {errors}"
