"""The `railserve` operator commands, run as a real process on a temporary database."""

import os

import pytest

from tests.support.server import railserve


@pytest.fixture
def env(database_url):
    return {**os.environ, "RAILSERVE_DATABASE_URL": database_url, "RAILSERVE_ENV": "development"}


def _ok(result):
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


def test_init_db_is_repeatable_and_keeps_data(env):
    _ok(railserve("init-db", env=env))
    _ok(railserve("seed-demo", env=env))
    _ok(railserve("init-db", env=env))
    assert "0 added, 6 already there" in _ok(railserve("seed-demo", env=env))


def test_add_train_and_check(env):
    out = _ok(
        railserve(
            "add-train",
            "--number",
            "12951",
            "--name",
            "Rajdhani",
            "--origin",
            "Mumbai",
            "--destination",
            "Delhi",
            "--departs",
            "2030-01-05T08:30",
            "--seats",
            "3",
            "--fare",
            "1250.5",
            env=env,
        )
    )
    assert "added train 12951" in out
    assert "all invariants hold" in _ok(railserve("check", env=env))
    assert "reconciled 0" in _ok(railserve("sweep", env=env))


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--number", "12-951", "letters or digits"),
        ("--number", "12345678901", "letters or digits"),
        ("--departs", "tomorrow", "ISO 8601"),
        ("--fare", "12.345", "two decimals"),
        ("--fare", "-5", "two decimals"),
        ("--seats", "0", "positive"),
    ],
)
def test_add_train_refuses_bad_values(env, flag, value, message):
    args = {
        "--number": "1",
        "--name": "N",
        "--origin": "A",
        "--destination": "B",
        "--departs": "2030-01-05T08:30",
        "--seats": "3",
        "--fare": "10",
    }
    args[flag] = value
    result = railserve("add-train", *[x for pair in args.items() for x in pair], env=env)
    assert result.returncode == 2
    assert message in result.stderr


def test_check_names_each_violation(env, database_url):
    import asyncio

    from railserve import db
    from railserve.models import Train

    _ok(railserve("seed-demo", env=env))

    async def corrupt():
        await db.init(database_url)
        try:
            await Train.filter(number="12951").update(seats_left=-1)
        finally:
            await db.close()

    asyncio.run(corrupt())
    result = railserve("check", env=env)
    assert result.returncode == 1
    assert "train 12951 has -1 seats left" in result.stdout
