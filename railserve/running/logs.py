"""The log format (JSON or text lines), written off the event loop.

Logs go through the standard library's `logging` (see docs/operations.md for why). The root
logger's one handler is a `QueueHandler`: on the thread that logs, a record only gets its
request id (read from the context variable there) and goes on a queue. A `QueueListener`
thread formats the records and writes them to stderr, every line waiting in the queue in
one write; it is not woken for each record, but every WRITE_INTERVAL (a thread switch per
line cost more than the line). `flush_logs()` waits until everything handed over so far is written: the app
calls it when it stops, the process at exit, and tests before they read their lines.
"""

from __future__ import annotations

import atexit
import collections
import copy
import json
import logging
import os
import queue
import re
import sys
import threading
import time
from logging.handlers import QueueHandler, QueueListener

from railserve.running.request_hooks import REQUEST_ID

# Anything that looks like a card number (13-19 digits, spaces or hyphens between) is cut
# from free text before it is written: no form value is logged, and this is the net under it.
CARD_LIKE = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
_UNSET = object()


def _scrub(text: str) -> str:
    return CARD_LIKE.sub("[redacted]", text) if any(c.isdigit() for c in text) else text


class _Formatter(logging.Formatter):
    # The last second formatted, and its text: most lines share their second with the one
    # before (strftime was a quarter of a line's cost). One tuple, so a handler on another
    # thread never pairs a second with another's text.
    _second: tuple[int, str] = (-1, "")

    def stamp(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        known, text = self._second
        if second != known:
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, text)
        return f"{text}.{int(record.msecs):03d}Z"

    def parts(self, record: logging.LogRecord) -> tuple[str, dict, str | None]:
        message = record.getMessage()
        if not getattr(record, "scrubbed", False):
            message = _scrub(message)
        fields = dict(getattr(record, "fields", None) or {})
        duration = fields.get("duration_ms")
        if duration is not None:
            fields["duration_ms"] = round(duration, 2)
        # Set by the queue's handler on the thread that logged; a handler of a test's own
        # runs there, and reads the variable itself.
        rid = getattr(record, "request_id", _UNSET)
        if rid is _UNSET:
            rid = REQUEST_ID.get()
        if rid is not None:
            fields["request_id"] = rid
        error = record.exc_text
        if error is None and record.exc_info:
            error = self.formatException(record.exc_info)
        return message, fields, _scrub(error) if error else None


_JSON = json.JSONEncoder(default=str, ensure_ascii=False)  # made once, not per line


class JsonFormatter(_Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        message, fields, error = self.parts(record)
        line = {
            "time": self.stamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": message,
            **fields,
        }
        if error:
            line["error"] = error
        return _JSON.encode(line)


class TextFormatter(_Formatter):
    """A plain line: time, level, logger, message, then key=value pairs."""

    def format(self, record: logging.LogRecord) -> str:
        message, fields, error = self.parts(record)
        pairs = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None and k != "method")
        line = f"{self.stamp(record)} {record.levelname} {record.name}: {message}"
        if pairs:
            line += " " + pairs
        if error:
            line += "\n" + error
        return line


_IMMUTABLE = frozenset((str, int, float, bool, type(None)))
_TRACEBACKS = logging.Formatter()


class _Enqueue(QueueHandler):
    """Hands records to the writer thread with what only this thread knows."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # The usual record (plain arguments, no exception) goes as it is, unformatted.
        # Arguments that could change before the writer reads them, and tracebacks, are
        # turned into text now, on a copy (other handlers may still read the original).
        # The request line (`scrubbed`) is known to be route names and numbers.
        args = record.args
        if not getattr(record, "scrubbed", False) and (
            record.exc_info
            or (args and not (type(args) is tuple and all(type(a) in _IMMUTABLE for a in args)))
        ):
            record = copy.copy(record)
            record.msg, record.args = record.getMessage(), None
            if record.exc_info:
                record.exc_text = _TRACEBACKS.formatException(record.exc_info)
                record.exc_info = None
        record.request_id = REQUEST_ID.get()
        return record


class _StderrWriter(logging.Handler):
    """Formats on the writer thread, and writes whatever waits to whatever sys.stderr is
    then (a test's capture replaces it), in one write."""

    def __init__(self) -> None:
        super().__init__()
        self.pending: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.pending.append(self.format(record))
        except Exception:
            self.handleError(record)

    def write_out(self) -> None:
        if not self.pending:
            return
        text = "\n".join(self.pending) + "\n"
        self.pending.clear()
        stream = sys.stderr
        try:
            stream.write(text)
            if not getattr(stream, "line_buffering", False):  # a line-buffered one has
                stream.flush()
        except (OSError, ValueError):  # stderr closed (the process is going): nowhere to write
            pass


class _Flush:
    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


# How long a line may wait for the writer. Waking the writer for each line costs more than
# the line (a thread switch and a turn of the GIL, measured at 100-150 µs a request on this
# VM): it wakes on this period, or at once for a flush or a long queue.
WRITE_INTERVAL = 0.05
WAKE_AT = 1000


class _Batches:
    """A queue for QueueHandler and QueueListener whose `put` wakes nobody."""

    def __init__(self) -> None:
        self.items: collections.deque = collections.deque()
        self.wake = threading.Event()

    def put_nowait(self, item) -> None:
        self.items.append(item)  # atomic under the GIL
        if type(item) is not logging.LogRecord or len(self.items) >= WAKE_AT:
            self.wake.set()  # a flush, the listener's stop, or a queue grown long

    put = put_nowait

    def get(self, block: bool = True):
        while True:
            try:
                return self.items.popleft()
            except IndexError:
                if not block:
                    raise queue.Empty from None
            self.wake.wait(WRITE_INTERVAL)
            self.wake.clear()

    def empty(self) -> bool:
        return not self.items


class _Listener(QueueListener):
    # The writer's thread, known from the first record it handles (the standard library
    # keeps its own reference private): a flush asked from there must not wait for itself.
    thread: threading.Thread | None = None

    def handle(self, record) -> None:  # type: ignore[override]
        if self.thread is None:
            self.thread = threading.current_thread()
            self.thread.name = "railserve-log-writer"
        if type(record) is _Flush:
            _writer.write_out()
            record.done.set()
            return
        super().handle(record)
        if self.queue.empty():
            _writer.write_out()


_queue = _Batches()
_enqueue = _Enqueue(_queue)  # type: ignore[arg-type]
_writer = _StderrWriter()
_listener: _Listener | None = None


def _start_listener() -> None:
    global _listener
    _listener = _Listener(_queue, _writer)
    _listener.start()


def _after_fork() -> None:
    # Threads do not survive a fork: a worker forked with a listener running starts its
    # own, on a fresh queue (what the parent had queued is the parent's to write).
    global _queue
    if _listener is not None:
        _queue = _enqueue.queue = _Batches()
        _writer.pending = []
        _start_listener()


os.register_at_fork(after_in_child=_after_fork)


def flush_logs(timeout: float = 5.0) -> None:
    """Wait until every record handed to the log so far is written."""
    listener = _listener
    if listener is None or threading.current_thread() is listener.thread:
        return
    marker = _Flush()
    _queue.put(marker)
    marker.done.wait(timeout)


atexit.register(flush_logs)


def configure_logging(log_format: str) -> None:
    """One handler on the root logger in the chosen format; RailServe's own lines at INFO."""
    # Neither format writes thread or process names: records need not look them up (the
    # logging HOWTO's "Optimization"); the pid stays.
    logging.logThreads = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    if _enqueue not in root.handlers:
        root.addHandler(_enqueue)
    flush_logs()  # lines already handed over keep the format they were logged in
    _writer.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    if _listener is None:
        _start_listener()
    railserve = logging.getLogger("railserve")
    if railserve.level == logging.NOTSET or railserve.level > logging.INFO:
        railserve.setLevel(logging.INFO)
