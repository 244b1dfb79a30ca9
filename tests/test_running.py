"""Running it: the guarded metrics, request ids, the log format and readiness, in-process.

PRODUCT.md "Running it: metrics, logs, readiness". The same metrics summed over two real
workers are in tests/concurrency/test_running_server.py.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from quart import Quart
from tortoise import Tortoise

from railserve import db, running
from railserve.models import Role, User
from railserve.payment.models import PaymentEvent
from railserve.running import forget_dead_workers, metrics
from tests.ops.conftest import make_operator
from tests.support.database import _pg, sqlite_path
from tests.support.passenger import JSON, Passenger, make_train

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "metrics-token-for-tests"
GENERATED_ID = re.compile(r"[0-9a-f]{20}")


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample of a scrape: (name, sorted labels) -> value."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def scrape(app: Quart) -> dict[tuple[str, tuple], float]:
    response = await app.test_client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    return samples(await response.get_data(as_text=True))


@pytest.fixture
async def app(settings, app_with):
    async with app_with(settings, metrics_token=TOKEN) as application:
        yield application


async def test_metrics_are_404_to_anonymous_and_passengers(app, passenger):
    anonymous = await app.test_client().get("/metrics")
    assert anonymous.status_code == 404  # not a login redirect
    assert (await passenger.get("/metrics")).status_code == 404
    wrong = await app.test_client().get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 404


async def test_metrics_are_served_to_operators_and_the_token(app):
    operator = await make_operator(app)
    response = await operator.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    assert "railserve_http_requests_total" in await response.get_data(as_text=True)
    found = await scrape(app)
    assert ("railserve_gateway_available", (("gateway", "simulated"),)) in found


async def test_without_a_token_only_operators_may_scrape(settings, app_with):
    async with app_with(settings, metrics_token="") as app:
        bare = await app.test_client().get("/metrics", headers={"Authorization": "Bearer "})
        assert bare.status_code == 404
        assert (await (await make_operator(app)).get("/metrics")).status_code == 200


async def test_request_counts_are_labelled_by_endpoint_never_by_path(app, passenger):
    before = await scrape(app)
    await passenger.get("/no/such/page/12345")
    await passenger.get("/payment/status/TXN0000000000000000", JSON)
    after = await scrape(app)
    unmatched = ("railserve_http_requests_total", (("code", "404"), ("endpoint", "unmatched")))
    assert after[unmatched] == before.get(unmatched, 0) + 1
    status = ("railserve_http_requests_total", (("code", "404"), ("endpoint", "payment.status")))
    assert after[status] == before.get(status, 0) + 1
    assert not any("12345" in str(labels) or "TXN" in str(labels) for _, labels in after)


async def test_a_payment_and_a_refund_are_counted(app, passenger):
    before = await scrape(app)
    data = await passenger.pay(await passenger.book(await make_train()))
    assert data["status"] == "success"
    cancelled = await passenger.post(f"/bookings/{data['booking_id']}/cancel", {})
    assert cancelled.status_code == 303
    after = await scrape(app)
    attempt = (
        "railserve_payment_attempts_total",
        (("gateway", "simulated"), ("method", "credit_card"), ("outcome", "success")),
    )
    assert after[attempt] == before.get(attempt, 0) + 1
    settled = ("railserve_payment_settle_seconds_count", ())
    assert after[settled] == before.get(settled, 0) + 1
    opened = ("railserve_refunds_total", (("status", "pending"),))
    assert after[opened] == before.get(opened, 0) + 1


async def test_a_scrape_reads_the_counters_before_the_database(app, monkeypatch):
    """A refund settled while a scrape runs is seen pending in the database's count or
    counted as settled, never both settled and still pending: a move is counted after its
    commit, so the counters are read first."""
    readiness = importlib.import_module("railserve.running.readiness")  # not the function
    counted = readiness._database_counts
    settled = ("railserve_refunds_total", (("status", "succeeded"),))
    before = (await scrape(app)).get(settled, 0)

    async def a_refund_settles_meanwhile() -> dict[str, float]:
        found = await counted()  # still pending in this reading
        metrics().refunds.labels("succeeded").inc()  # then it commits, and is counted
        return {**found, "refunds_pending": 1}

    monkeypatch.setattr(readiness, "_database_counts", a_refund_settles_meanwhile)
    during = await scrape(app)
    assert (during.get(settled, 0), during[("railserve_refunds_pending", ())]) == (before, 1)
    monkeypatch.setattr(readiness, "_database_counts", counted)
    assert (await scrape(app))[settled] == before + 1


async def test_cancelled_attempts_are_counted(settings, app_with):
    """An attempt stopped by its passenger, and one stopped with its unpaid booking."""
    outcome = (("gateway", "simulated"), ("method", "credit_card"), ("outcome", "cancelled"))
    attempt = ("railserve_payment_attempts_total", outcome)
    async with app_with(settings, metrics_token=TOKEN, gateway_delay=30.0) as slow:
        passenger = await Passenger.sign_up(slow)
        train = await make_train()
        before = await scrape(slow)
        first = await passenger.start(await passenger.book(train))
        assert (await passenger.post(f"/payment/cancel/{first}", {})).status_code == 303
        booking_id = await passenger.book(train)
        await passenger.start(booking_id)
        assert (await passenger.post(f"/bookings/{booking_id}/cancel", {})).status_code == 303
        after = await scrape(slow)
    assert after[attempt] == before.get(attempt, 0) + 2


async def test_request_ids_are_kept_made_and_echoed(app, passenger):
    kept = await passenger.get("/healthz", {"X-Request-ID": "abc-1.2_X"})
    assert kept.headers["X-Request-ID"] == "abc-1.2_X"
    for bad in ("has space", "x" * 65, "é", ""):
        made = await passenger.get("/healthz", {"X-Request-ID": bad})
        assert GENERATED_ID.fullmatch(made.headers["X-Request-ID"]), bad
    first = (await passenger.get("/healthz")).headers["X-Request-ID"]
    second = (await passenger.get("/healthz")).headers["X-Request-ID"]
    assert GENERATED_ID.fullmatch(first) and first != second


async def test_the_request_id_reaches_the_audit_trail(app, passenger):
    booking_id = await passenger.book(await make_train())
    form = {**await passenger.pay_form(booking_id), **_card()}
    form["csrf_token"] = passenger.csrf
    response = await passenger.client.post(
        f"/payment/process/{booking_id}",
        form=form,
        headers={"X-Request-ID": "pay-req-1"},
    )
    assert response.status_code == 303
    transaction_id = response.headers["Location"].rsplit("/", 1)[-1]
    await passenger.wait_final(transaction_id)
    details = await PaymentEvent.filter(payment__transaction_id=transaction_id).values_list(
        "event", "detail"
    )
    start = dict(details)["start"]
    assert start.endswith("[request pay-req-1]"), details


def _card() -> dict[str, str]:
    from tests.support.passenger import card

    return card()


async def test_json_logs_one_object_per_line_with_the_request_id(settings, app_with, capsys):
    async with app_with(settings, log_format="json") as app:
        person = await Passenger.sign_up(app)
        running.flush_logs()
        capsys.readouterr()
        response = await person.get("/profile", {"X-Request-ID": "json-line-1"})
        assert response.status_code == 200
        running.flush_logs()  # lines are written by the log's own thread
        lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    parsed = [json.loads(line) for line in lines]
    request_lines = [line for line in parsed if line.get("request_id") == "json-line-1"]
    assert request_lines, lines
    line = request_lines[-1]
    assert line["method"] == "GET" and line["endpoint"] == "booking.profile", line
    assert line["status"] == 200 and line["user_id"] == person.user_id
    assert isinstance(line["duration_ms"], float | int)


async def test_text_logs_carry_transitions_with_their_request(settings, app_with, capsys):
    async with app_with(settings, log_format="text") as app:
        person = await Passenger.sign_up(app)
        data = await person.pay(await person.book(await make_train()))
        running.flush_logs()
        err = capsys.readouterr().err
    txn = data["transaction_id"]
    moves = [line for line in err.splitlines() if f"payment {txn}" in line]
    assert any("- -> pending by user" in line for line in moves), err[-2000:]
    assert any("pending -> success by gateway" in line for line in moves), err[-2000:]
    assert all("request_id=" in line for line in moves)


async def test_ready_when_the_database_answers_and_is_migrated(app):
    response = await app.test_client().get("/readyz")
    assert response.status_code == 200


async def test_not_ready_while_a_migration_is_missing(app):
    connection = Tortoise.get_connection("default")
    await connection.execute_query('DELETE FROM "tortoise_migrations" WHERE "name" LIKE \'0003%\'')
    response = await app.test_client().get("/readyz")
    assert response.status_code == 503
    assert "0003_" in await response.get_data(as_text=True)


async def test_not_ready_when_the_database_is_down(app, database_url, database_factory):
    assert (await app.test_client().get("/readyz")).status_code == 200
    path = sqlite_path(database_url)
    if path is None:
        name = database_url.rsplit("/", 1)[1]
        await _pg(database_url, f'DROP DATABASE "{name}" WITH (FORCE)')
    else:
        # The file goes, and a folder takes its name: SQLite can no longer open it.
        await db.close()
        saved = path.with_suffix(".saved")
        path.rename(saved)
        path.mkdir()
    try:
        response = await app.test_client().get("/readyz")
        assert response.status_code == 503
        assert "database unreachable" in await response.get_data(as_text=True)
        assert (await app.test_client().get("/healthz")).status_code == 200
    finally:  # back, for the app's shutdown
        if path is None:
            template = database_factory.template
            await _pg(database_url, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        else:
            path.rmdir()
            saved.rename(path)


async def test_a_promoted_operator_is_seen_at_once(app, passenger):
    assert (await passenger.get("/metrics")).status_code == 404
    await User.filter(id=passenger.user_id).update(role=Role.OPERATOR)
    assert (await passenger.get("/metrics")).status_code == 200


WORKER = """
import os, signal, sys
from railserve.running import metrics
m = metrics()
m.live_streams.inc(int(sys.argv[1]))
m.http_requests.labels("running.healthz", "200").inc()
print("counted", flush=True)
if sys.argv[2] == "killed":
    os.kill(os.getpid(), signal.SIGKILL)
sys.stdin.read()
"""


def _worker(folder: Path, streams: int, end: str) -> subprocess.Popen:
    """A process writing a worker's metrics files, as a worker of `railserve serve` does."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder), "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(streams), end],
        env=env,
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().strip() == "counted"
    return process


def _summed(folder: Path) -> dict[str, float]:
    from prometheus_client.multiprocess import MultiProcessCollector

    return {
        sample.name: sample.value
        for family in MultiProcessCollector(None, str(folder)).collect()
        for sample in family.samples
        if sample.name in ("railserve_live_streams", "railserve_http_requests_total")
    }


def test_a_killed_workers_streams_stop_counting_at_the_next_scrape(tmp_path):
    """A worker killed with streams open never marks itself dead; the scrape does it."""
    killed = _worker(tmp_path, 2, "killed")
    killed.wait()
    alive = _worker(tmp_path, 3, "alive")
    try:
        assert _summed(tmp_path)["railserve_live_streams"] == 5  # the dead one's two counted
        assert forget_dead_workers(str(tmp_path)) == [killed.pid]
        after = _summed(tmp_path)
        assert after["railserve_live_streams"] == 3
        assert after["railserve_http_requests_total"] == 2  # its answers stay counted
        assert forget_dead_workers(str(tmp_path)) == []  # the living one is left alone
    finally:
        alive.communicate("")
