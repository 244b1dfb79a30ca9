"""`railserve serve`: the production ASGI server (Granian by default, Hypercorn or uvicorn)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from railserve import config as config_module
from railserve.cli.common import fail


def cmd_serve(args: argparse.Namespace) -> int:
    config_module.from_env()  # refuse to start on a bad configuration, before forking
    # The app is imported by module path, from the project's root (where app.py is).
    sys.path.insert(0, os.getcwd())
    with _metrics_folder():
        return _serve(args)


@contextlib.contextmanager
def _metrics_folder():
    """prometheus-client's multiprocess folder, in the environment before any worker starts
    and emptied first (PROMETHEUS_MULTIPROC_DIR when set, else a folder of this server's)."""
    import shutil
    import tempfile

    from railserve import running

    given = running.multiprocess_dir()
    path = given or tempfile.mkdtemp(prefix="railserve-metrics-")
    running.prepare_multiprocess_dir(path)
    try:
        yield
    finally:
        if not given:  # the environment as it was (a test may serve in-process)
            os.environ.pop(running.MULTIPROC_ENV, None)
            shutil.rmtree(path, ignore_errors=True)


def _serve(args: argparse.Namespace) -> int:
    if args.server == "uvicorn":
        return _serve_uvicorn(args)
    if args.server == "granian":
        return _serve_granian(args)
    from hypercorn.config import Config
    from hypercorn.run import run

    config = Config()
    config.application_path = args.app
    config.bind = [args.bind]
    config.workers = args.workers
    config.accesslog = "-" if args.access_log else None
    config.errorlog = "-"
    config.graceful_timeout = 5
    return run(config) or 0


def _serve_uvicorn(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError:
        fail("uvicorn is not installed: pip install 'railserve[uvicorn]'")
    host, _, port = args.bind.rpartition(":")
    uvicorn.run(
        args.app,
        host=host or "127.0.0.1",
        port=int(port),
        workers=args.workers,
        access_log=args.access_log,
        timeout_graceful_shutdown=5,
        lifespan="on",
    )
    return 0


STREAMS_PER_WORKER = 10_000  # concurrent requests (live streams included) a worker takes


def _serve_granian(args: argparse.Namespace) -> int:
    try:
        from granian import Granian
        from granian.constants import Interfaces
    except ImportError:
        fail("granian is not installed: pip install -e .")
    host, _, port = args.bind.rpartition(":")
    Granian(
        args.app,
        address=host or "127.0.0.1",
        port=int(port),
        interface=Interfaces.ASGI,
        workers=args.workers,
        log_access=args.access_log,
        workers_kill_timeout=5,  # graceful shutdown: in-flight requests get 5 s
        # Granian serves at most backlog // workers requests at once per worker (1,024 by
        # default); each open live-status stream is one, so allow thousands.
        backlog=4096,
        backpressure=STREAMS_PER_WORKER,
    ).serve()
    return 0
