"""Every route that takes an id answers 404 to an id it cannot have: out of the column's
range, negative, zero, not a number. Found by walking the app's URL map, so a new route
is covered the day it is added."""

from __future__ import annotations

import pytest
from quart import Quart

from railserve.models import Role, User
from tests.security.helpers import snapshot
from tests.support.passenger import HX, JSON, Passenger

IMPOSSIBLE = [
    "2147483648",  # one past the largest id a column holds
    "9999999999",
    "99999999999999999999",
    "-1",
    "0",
    "007",
    "abc",
    "1.5",
    "1e3",
    "%D9%A1",  # an Arabic-Indic one
    "TXN" + "A" * 16 + "X",
    "RFD" + "0" * 16,
    "%00",
]


def routes_with_ids(app: Quart) -> list[tuple[str, str, str]]:
    """(method, rule, argument) of every route with an argument in its path."""
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.arguments or rule.endpoint == "static":
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append((method, rule.rule, next(iter(rule.arguments))))
    return found


@pytest.fixture
async def operator(app) -> Passenger:
    """An operator can reach every route, /ops included: only the id can refuse."""
    person = await Passenger.sign_up(app, name="Olga Operator")
    await User.filter(id=person.user_id).update(role=Role.OPERATOR)
    await person.refresh_csrf("/ops")
    return person


def path_of(rule: str, argument: str, value: str) -> str:
    for converter in ("dbid:", "path:", ""):
        rule = rule.replace(f"<{converter}{argument}>", value)
    return rule


async def test_every_route_answers_404_to_an_impossible_id(app, operator):
    routes = routes_with_ids(app)
    assert len(routes) >= 15, routes
    before = await snapshot()
    wrong = []
    for method, rule, argument in routes:
        for value in IMPOSSIBLE:
            path = path_of(rule, argument, value)
            for headers in (None, HX, JSON):
                if method == "GET":
                    response = await operator.get(path, headers)
                else:
                    response = await operator.post(
                        path, {"reason": "checking ids", "reference": "R1"}, htmx=headers is HX
                    )
                if response.status_code != 404:
                    wrong.append((method, path, headers, response.status_code))
    assert wrong == []
    assert await snapshot() == before


async def test_the_example_from_the_issue(app, passenger):
    response = await passenger.post("/bookings/2147483648/cancel")
    assert response.status_code == 404
    response = await passenger.get("/bookings/2147483648/cancel")
    assert response.status_code == 404
