"""Every /ops URL, found by walking the app's URL map: passengers get 404, anonymous
visitors are sent to log in (plain 303, htmx 401 + HX-Redirect, JSON 401), nothing changes."""

from __future__ import annotations

import pytest

from railserve.payment.models import WebhookLog
from tests.security.helpers import post_form, snapshot, visitor
from tests.support.passenger import HX, JSON


@pytest.fixture
async def ops_urls(app, paid) -> list[tuple[str, str]]:
    """(method, path) of every route of the console, with real ids filled in."""
    log = await WebhookLog.first()
    values = {
        "transaction_id": paid,
        "event_id": log.event_id or str(log.id),
        "refund_id": "RFD0000000000000000",
    }
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("ops."):
            continue
        path = rule.rule
        for name in rule.arguments:
            path = path.replace(f"<{name}>", values[name]).replace(f"<dbid:{name}>", values[name])
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append((method, path))
    assert len(found) >= 11, found
    return found


async def _ask(person, method: str, path: str, headers: dict | None = None):
    if method == "GET":
        return await person.get(path, headers)
    htmx = (headers or {}).get("HX-Request") == "true"
    form = {"reason": "checking access", "amount": "1.00"}
    return await post_form(person.client, path, form, token=person.csrf, htmx=htmx, headers=headers)


async def test_every_ops_url_is_a_404_for_passengers(passenger, ops_urls):
    before = await snapshot()
    for method, path in ops_urls:
        for headers in (None, HX, JSON):
            response = await _ask(passenger, method, path, headers)
            assert response.status_code == 404, (method, path, headers)
    assert await snapshot() == before


async def test_every_ops_url_sends_anonymous_visitors_to_log_in(app, ops_urls):
    anonymous = await visitor(app)
    before = await snapshot()
    for method, path in ops_urls:
        login = f"/auth/login?next={path}"
        plain = await _ask(anonymous, method, path, {"Accept": "text/html"})
        assert plain.status_code == 303, (method, path)
        assert plain.headers["Location"] == login
        htmx = await _ask(anonymous, method, path, HX)
        assert htmx.status_code == 401, (method, path)
        assert htmx.headers["HX-Redirect"] == login
        as_json = await _ask(anonymous, method, path, JSON)
        assert as_json.status_code == 401, (method, path)
        assert as_json.mimetype == "application/json"
    assert await snapshot() == before


async def test_operators_get_every_page(operator, ops_urls):
    for method, path in ops_urls:
        if method == "GET":
            response = await operator.get(path)
            assert response.status_code == 200, path


async def test_the_nav_links_to_the_console_for_operators_only(operator, passenger):
    assert 'href="/ops"' in await operator.text("/")
    assert 'href="/ops"' not in await passenger.text("/")
