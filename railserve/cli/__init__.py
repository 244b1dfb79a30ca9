"""The `railserve` console script: schema, trains, sweep, invariant check, server."""

# (The docstring above is the parser's description.) The commands live by what they touch:
# `data` (schema, trains, operators), `payment` (through the gateways), `server` (serve);
# `common` is what they share. Here: the parser and `main`, the console script's entry point.

from __future__ import annotations

import argparse
import os

from railserve import config as config_module
from railserve.cli.common import fail
from railserve.cli.data import (
    cmd_add_operator,
    cmd_add_train,
    cmd_init_db,
    cmd_seed_demo,
)
from railserve.cli.payment import cmd_cancel_train, cmd_check, cmd_reconcile, cmd_sweep
from railserve.cli.server import cmd_serve
from railserve.models import TravelClass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="railserve", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("init-db", help="create or upgrade the schema").set_defaults(
        run=cmd_init_db
    )
    commands.add_parser("seed-demo", help="add a handful of demo trains").set_defaults(
        run=cmd_seed_demo
    )
    add = commands.add_parser("add-train", help="add a train")
    add.add_argument("--number", required=True)
    add.add_argument("--name", required=True)
    add.add_argument("--origin", required=True)
    add.add_argument("--destination", required=True)
    add.add_argument("--departs", required=True, help="ISO 8601; no offset means UTC")
    add.add_argument("--seats", required=True, type=int)
    add.add_argument(
        "--fare", required=True, help="major units with the currency's digits, e.g. 1250.00"
    )
    add.add_argument("--currency", default="INR", help="ISO 4217 code (default INR)")
    add.add_argument(
        "--class", dest="travel_class", default="3A", choices=[c.value for c in TravelClass]
    )
    add.set_defaults(run=cmd_add_train)
    cancel = commands.add_parser(
        "cancel-train", help="the railway cancelled a train: cancel and refund every booking"
    )
    cancel.add_argument("--number", required=True)
    cancel.add_argument("--reason", required=True)
    # Seconds between bookings: lets a test kill the command halfway.
    cancel.add_argument("--pause", type=float, default=0.0, help=argparse.SUPPRESS)
    cancel.set_defaults(run=cmd_cancel_train)
    commands.add_parser("sweep", help="expire stale attempts and holds, reconcile").set_defaults(
        run=cmd_sweep
    )
    commands.add_parser("check", help="verify the database invariants").set_defaults(run=cmd_check)
    operator = commands.add_parser(
        "add-operator", help="make an account an operator (a new one reads its password from stdin)"
    )
    operator.add_argument("--email", required=True)
    operator.add_argument("--name")
    operator.set_defaults(run=cmd_add_operator)
    commands.add_parser(
        "reconcile", help="compare the gateway's ledger with the database; exit 1 on differences"
    ).set_defaults(run=cmd_reconcile)
    serve = commands.add_parser("serve", help="run the production ASGI server")
    serve.add_argument("--bind", default="127.0.0.1:5000")
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--access-log", action="store_true")
    serve.add_argument(
        "--server",
        choices=("hypercorn", "uvicorn", "granian"),
        default=os.environ.get("RAILSERVE_SERVER", "granian"),
        help="the ASGI server: granian (measured fastest, bench/README.md), hypercorn, or "
        "uvicorn (the 'uvicorn' extra)",
    )
    serve.add_argument(
        "--app", default="app:app", help="the ASGI app to serve (the benchmarks' references)"
    )
    serve.set_defaults(run=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except config_module.ConfigError as error:
        fail(str(error))
    return 1
