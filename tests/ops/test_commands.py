"""`railserve add-operator`: promote an existing account, or create one from stdin."""

from __future__ import annotations

import os
import subprocess

import pytest

from railserve.models import Role, User
from tests.support.server import RAILSERVE, ROOT


@pytest.fixture
def env(database_url):
    return {**os.environ, "RAILSERVE_DATABASE_URL": database_url, "RAILSERVE_ENV": "development"}


def _run(env, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(RAILSERVE), "add-operator", *args],
        env=env,
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_promotes_an_existing_passenger(app, env, passenger):
    result = _run(env, "--email", passenger.email.upper())
    assert result.returncode == 0, result.stderr
    assert "now an operator" in result.stdout
    assert (await User.get(id=passenger.user_id)).role == Role.OPERATOR
    assert (await passenger.get("/ops")).status_code == 200


async def test_creates_an_operator_reading_the_password_from_stdin(app, env):
    result = _run(env, "--email", "Ops@Example.com", "--name", "Ola", stdin="long-enough-pw\n")
    assert result.returncode == 0, result.stderr
    user = await User.get(email="ops@example.com")
    assert (user.name, user.role) == ("Ola", Role.OPERATOR)
    assert user.password_hash.startswith("$argon2")


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["--email", "not-an-email"], "", "valid e-mail"),
        (["--email", "new@example.com"], "short\n", "8 to 128"),
    ],
)
async def test_refuses_bad_input_and_writes_nothing(app, env, args, stdin, message):
    result = _run(env, *args, stdin=stdin)
    assert result.returncode == 2
    assert message in result.stderr
    assert not await User.filter(role=Role.OPERATOR).exists()
