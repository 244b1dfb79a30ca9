"""The README stays true to the code it documents: its facts, not only its names.

Each test reads a statement of the README and checks it against what the code does or
holds: the default server `railserve serve` starts, the intervals of live push and of
polling, every configuration variable (read by the code, default as stated), the test
triggers (paying with each gives the outcome stated), the commands and the paths named.
"""

from __future__ import annotations

import re
import sys
from dataclasses import MISSING, fields
from itertools import product
from pathlib import Path

import pytest

from railserve import cli
from railserve.config import Settings
from railserve.payment import live
from railserve.payment.live import hub, stream
from railserve.payment.machine import PaymentMachine
from tests.support.passenger import card

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "ten": 10}


def stated(pattern: str, text: str = README) -> str:
    """The one value the README (or `text`) states where `pattern` matches."""
    found = re.findall(pattern, text)
    assert len(found) == 1, f"expected the statement {pattern!r} once, found {found}"
    return found[0]


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def table(title: str) -> list[list[str]]:
    """The rows of the first table in a section, as lists of cells (header left out)."""
    lines = [line for line in section(title).splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def test_readme_shows_the_current_state_diagram():
    assert f"{PaymentMachine:mermaid}".strip() in README


# --- the server ---------------------------------------------------------------------------


def test_the_default_server_is_the_one_railserve_serve_starts(monkeypatch):
    """`railserve serve` (and so scripts/demo) runs the server, bind and grace the README
    names, with no RAILSERVE_SERVER set."""
    import granian

    started: dict = {}

    class Recorder:
        def __init__(self, target, **options) -> None:
            started.update(options, target=target)

        def serve(self) -> None:
            started["served"] = True

    monkeypatch.delenv("RAILSERVE_SERVER", raising=False)
    monkeypatch.setattr(granian, "Granian", Recorder)
    monkeypatch.setattr(sys, "path", list(sys.path))  # cmd_serve prepends the cwd
    assert cli.main(["serve"]) == 0

    name = stated(r"`serve` runs (\w+) by default")
    assert name.lower() == "granian" and started.get("served")
    assert stated(r"\(served by (\w+);") == name
    address = stated(r"Serve the demo on SQLite at http://([\d.:]+)")
    assert f"{started['address']}:{started['port']}" == address
    grace = int(stated(r"each shuts down gracefully \((\d+) s\)"))
    assert started["workers_kill_timeout"] == grace
    assert "--server" not in (ROOT / "scripts" / "demo").read_text()
    assert int(stated(r"gives requests in flight (\d+) s")) == grace


def test_every_command_the_readme_shows_exists():
    choices = cli.build_parser()._subparsers._group_actions[0].choices
    shown = set(re.findall(r"^\s+railserve ([a-z-]+)", README, re.MULTILINE))
    shown |= set(re.findall(r"`railserve ([a-z-]+)", README))
    assert shown and shown <= set(choices), shown - set(choices)


# --- live push and polling ----------------------------------------------------------------


def test_live_push_intervals_are_the_codes():
    push = section("Live push")
    assert float(stated(r"a `: ping`\s+comment every (\d+) s", push)) == stream.HEARTBEAT
    assert int(stated(r"every (\d+) ms while the worker has\s+streams open", push)) == round(
        hub.POLL_INTERVAL * 1000
    )
    minutes = WORDS[stated(r"deletes\s+rows older than (\w+) minutes", push)]
    assert live.KEEP_CHANGES.total_seconds() == minutes * 60


def test_the_poll_intervals_stated_are_the_pages():
    app_js = (ROOT / "static" / "app.js").read_text()
    status_page = (ROOT / "templates" / "payment" / "status.html").read_text()
    dashboard = (ROOT / "templates" / "ops" / "_dashboard.html").read_text()

    poll = stated(r"into the former (\d+) s self-poll")
    assert stated(r'"hx-trigger", "every (\d+)s"', app_js) == poll
    refresh = stated(r"status page refreshes itself every (\d+) s")
    assert stated(r'<meta http-equiv="refresh" content="(\d+)">', status_page) == refresh
    assert stated(r'hx-trigger="every (\d+)s"', dashboard) == stated(r"refreshes every (\d+) s")


def test_a_live_card_says_how_it_listens():
    """The status card the README describes: SSE while it can change, a poll URL to fall
    back to; app.js and the template use the same attributes."""
    template = (ROOT / "templates" / "payment" / "_status.html").read_text()
    app_js = (ROOT / "static" / "app.js").read_text()
    extension = stated(r"\(`(static/htmx-ext-sse-[\d.]+\.min\.js)`\)")
    assert (ROOT / extension).exists()
    for attribute in ("sse-connect", "sse-swap", "sse-close", "hx-ext"):
        assert attribute in template and f'"{attribute}"' in app_js
    assert "data-poll-url" in template and "pollUrl" in app_js


# --- configuration ------------------------------------------------------------------------


def _configuration() -> dict[str, tuple[str, str]]:
    return {
        row[0].strip("`"): (row[1], row[2])
        for row in table("Configuration")
        if row[0].startswith("`RAILSERVE_")
    }


def test_every_setting_is_in_the_configuration_table():
    documented = _configuration()
    for item in fields(Settings):
        if item.name != "currency":  # per train, not configuration
            assert f"RAILSERVE_{item.name.upper()}" in documented


def test_every_variable_the_readme_names_is_read_by_the_code():
    settings = {f"RAILSERVE_{item.name.upper()}" for item in fields(Settings)}
    sources = [*(ROOT / "railserve").rglob("*.py"), *(ROOT / "scripts").iterdir()]
    sources += [ROOT / "tests" / "support" / "database.py"]
    read = set(re.findall(r"\bRAILSERVE_[A-Z0-9_]+\b", "\n".join(p.read_text() for p in sources)))
    for name in set(re.findall(r"\bRAILSERVE_[A-Z0-9_]*", README)):
        if name.endswith("_"):  # a family: RAILSERVE_RATE_LIMIT_*
            assert any(known.startswith(name) for known in settings), name
        else:
            assert name in settings or name in read, f"{name} is documented but never read"


def _as_setting(text: str, default: object) -> object:
    if isinstance(default, bool):
        return {"on": True, "off": False}[text]
    if isinstance(default, int | float):
        return type(default)(text)
    return text


def test_the_stated_defaults_are_the_settings_defaults():
    documented = _configuration()
    compared = 0
    for item in fields(Settings):
        name = f"RAILSERVE_{item.name.upper()}"
        if name not in documented or item.default is MISSING:
            continue
        value = re.fullmatch(r"`([^`]*)`", documented[name][0])
        if value is None:  # described in words ("empty", "generated into instance/ …")
            assert item.default in ("", None), (name, item.default)
            continue
        assert _as_setting(value.group(1), item.default) == item.default, name
        compared += 1
    assert compared >= 20


# --- test triggers ------------------------------------------------------------------------


def _triggers() -> list[tuple[str, str, str]]:
    rows = [row for row in table("Paying in test mode") if row[0] in ("card", "upi")]
    return [(method, value.strip("`"), outcome) for method, value, outcome in rows]


async def test_the_trigger_table_lists_what_the_pay_page_lists(app):
    listed = {row[1] for row in app.extensions["railserve.gateway"].test_triggers()}
    assert {value for _, value, _ in _triggers()} == listed - {"—"}


@pytest.mark.parametrize(("method", "value", "outcome"), _triggers())
async def test_paying_with_each_test_trigger_gives_the_outcome_stated(
    app, passenger, train, method, value, outcome
):
    instrument = card(value) if method == "card" else {"method": "upi", "upi_id": value}
    final = await passenger.pay(await passenger.book(train), instrument)
    if outcome.startswith("failed:"):
        reason = outcome.removeprefix("failed:").split("(")[0].strip()
        assert final["status"] == "failed"
        assert reason.lower() in final["failure_reason"].lower(), (reason, final)
    else:
        assert re.split(r"[;(]", outcome)[0].strip() == "success"
        assert final["status"] == "success", final


# --- paths --------------------------------------------------------------------------------


def _expand(path: str) -> list[str]:
    """`railserve/{auth,booking}.py` → both files."""
    parts = re.split(r"\{([^}]*)\}", path)
    choices = [part.split(",") if index % 2 else [part] for index, part in enumerate(parts)]
    return ["".join(combo) for combo in product(*choices)]


def test_every_path_the_readme_names_exists():
    top = r"(?:railserve|static|templates|tests|scripts|bench|\.ci)/"
    named = re.findall(rf"(?<![\w/])({top}(?:[^\s`)',;:{{]|\{{[^}}]*\}})*)", README)
    checked = 0
    for path in named:
        if "<" in path or "…" in path:
            continue
        for one in _expand(path.rstrip(".")):
            assert (ROOT / one).exists(), one
            checked += 1
    assert checked >= 20
