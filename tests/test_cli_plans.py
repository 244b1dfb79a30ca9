"""`railserve` refuses to run on a bad RAILSERVE_PAYMENT_PLANS file, as a real process."""

import os

from tests.support.server import railserve

BAD = """
[plans.deposit]
title = "Deposit now, balance later"
currencies = ["INR"]

[[plans.deposit.parts]]
percent = 25

[[plans.deposit.parts]]
percent = 75
due_hours_before_departure = 72

[[plans.deposit.parts]]
percent = 0.5
due_hours_before_departure = 96
"""


def test_check_and_serve_refuse_a_bad_plans_file(tmp_path):
    path = tmp_path / "plans.toml"
    path.write_text(BAD)
    env = {
        **os.environ,
        "RAILSERVE_DATABASE_URL": f"sqlite://{tmp_path / 'db.sqlite3'}",
        "RAILSERVE_ENV": "development",
        "RAILSERVE_PAYMENT_PLANS": str(path),
    }
    for command in (["check"], ["serve", "--bind", "127.0.0.1:0"]):
        result = railserve(*command, env=env)
        assert result.returncode == 2, result.stdout
        assert "payment plan 'deposit': the parts' percentages add up to 100.5" in result.stderr
    path.write_text(BAD.replace("percent = 75", "percent = 74.5"))
    result = railserve("check", env=env)
    assert "payment plan 'deposit', part 3: falls due 96 h before departure" in result.stderr
    assert result.returncode == 2
