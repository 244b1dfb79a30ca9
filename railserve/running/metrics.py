"""Every metric of a worker, the multiprocess folder they are written to, and one scrape.

Metrics use the official prometheus-client; `railserve serve` puts its multiprocess folder
in the environment before the workers start, and a scrape sums every worker's files.
prometheus-client chooses between in-memory and multiprocess values when it is first
imported, so it is imported here only when the app is built (in a worker, after the
variable is set), never at import time of the package.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# The files of a worker's live gauges (open streams, breakers): `gauge_livesum_<pid>.db`.
LIVE_GAUGE_FILE = re.compile(r"gauge_live[a-z]+_(\d+)\.db")


class Metrics:
    """Every metric of one process, and cached children for the per-request labels."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.payment_attempts = Counter(
            "railserve_payment_attempts",
            "Payment attempts that reached a final state, by method, gateway and outcome.",
            ["method", "gateway", "outcome"],
        )
        self.settle_seconds = Histogram(
            "railserve_payment_settle_seconds",
            "Seconds from an attempt's start to its final state.",
            buckets=(0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300, 600, 1800),
        )
        self.refunds = Counter(
            "railserve_refunds",
            "Refunds reaching each status (pending: opened).",
            ["status"],
        )
        self.webhooks = Counter(
            "railserve_webhooks",
            "Gateway webhooks received, by provider and the code we answered.",
            ["provider", "code"],
        )
        # Each worker writes until when its breaker skips a gateway (0: closed); the scrape
        # turns the latest of them into railserve_gateway_available.
        self.breaker_open_until = Gauge(
            "railserve_gateway_breaker_open_until_seconds",
            "Unix time until which a worker's circuit breaker skips the gateway (0: closed).",
            ["gateway"],
            multiprocess_mode="livemax",
        )
        self.live_streams = Gauge(
            "railserve_live_streams",
            "Live status streams open now.",
            multiprocess_mode="livesum",
        )
        self.http_requests = Counter(
            "railserve_http_requests",
            "HTTP requests answered, by endpoint name and status code.",
            ["endpoint", "code"],
        )
        self.http_seconds = Histogram(
            "railserve_http_request_seconds",
            "Seconds to answer a request (to its headers), by endpoint name.",
            ["endpoint"],
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.providers: frozenset[str] = frozenset()
        # endpoint -> code -> (counter child, histogram child): `labels()` takes a lock and
        # builds a key tuple each call; the status poll must not pay that (nor a tuple key).
        self._request_children: dict[str, dict[int, tuple[Any, Any]]] = {}

    def request_children(self, endpoint: str, code: int) -> tuple[Any, Any]:
        by_code = self._request_children.get(endpoint)
        if by_code is not None:
            children = by_code.get(code)
            if children is not None:
                return children
        else:
            by_code = self._request_children[endpoint] = {}
        children = by_code[code] = (
            self.http_requests.labels(endpoint, str(code)),
            self.http_seconds.labels(endpoint),
        )
        return children


_metrics: Metrics | None = None


def metrics() -> Metrics:
    global _metrics
    if _metrics is None:
        _metrics = Metrics()
    return _metrics


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def multiprocess_values() -> str | None:
    """The folder this process's metrics are written to, if they are (prometheus-client
    chose when it was imported: the variable set later changes nothing)."""
    from prometheus_client import values

    path = multiprocess_dir()
    return path if path and values.ValueClass is not values.MutexValue else None


def prepare_multiprocess_dir(path: str) -> None:
    """Make the folder and empty it (in the process that spawns the workers, before them)."""
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.remove(os.path.join(path, name))
    os.environ[MULTIPROC_ENV] = path


def worker_stopped() -> None:
    """A worker leaving: its live gauges (open streams, breakers) stop counting."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process took the number: not ours to judge
        return True
    try:  # a zombie answers the signal: it is dead all the same
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except OSError:
        return True


def forget_dead_workers(path: str) -> list[int]:
    """Drop the live gauges of workers that died without stopping (a kill, a crash): what
    `worker_stopped` would have done. Their counters stay. Returns the pids forgotten."""
    from prometheus_client import multiprocess

    pids = {
        int(found[1]) for name in os.listdir(path) if (found := LIVE_GAUGE_FILE.fullmatch(name))
    }
    dead = sorted(pid for pid in pids if pid != os.getpid() and not _alive(pid))
    for pid in dead:
        multiprocess.mark_process_dead(pid, path)
    return dead


class Scrape:
    """One scrape: every worker's metrics, gateway availability, and the database's counts.

    The workers' metrics are read when it is made, the database's counts after (`counts`):
    a move is counted only once its transaction committed, so a counter seen moved has its
    commit in the counts too (a refund seen settled is no longer seen pending)."""

    def __init__(self) -> None:
        from prometheus_client import REGISTRY
        from prometheus_client.core import GaugeMetricFamily
        from prometheus_client.multiprocess import MultiProcessCollector

        path = multiprocess_values()
        if path:
            forget_dead_workers(path)
        families = list(MultiProcessCollector(None, path).collect() if path else REGISTRY.collect())
        now = time.time()
        available = GaugeMetricFamily(
            "railserve_gateway_available",
            "1 when the gateway takes attempts, 0 while a circuit breaker skips it.",
            labels=["gateway"],
        )
        open_until = {name: 0.0 for name in metrics().providers}
        for family in families:
            if family.name == "railserve_gateway_breaker_open_until_seconds":
                for sample in family.samples:
                    gateway = sample.labels.get("gateway", "")
                    open_until[gateway] = max(open_until.get(gateway, 0.0), sample.value)
        for gateway, until in sorted(open_until.items()):
            available.add_metric([gateway], 0.0 if until > now else 1.0)
        self.families = [*families, available]
        self.counts: dict[str, float] = {}

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        yield from self.families
        yield GaugeMetricFamily(
            "railserve_refunds_pending",
            "Refunds waiting for the gateway's answer.",
            value=self.counts["refunds_pending"],
        )
        yield GaugeMetricFamily(
            "railserve_mail_outbox_pending",
            "Mails waiting to be delivered by SMTP.",
            value=self.counts["mail_outbox_pending"],
        )
