"""A log line made by hand, for the lines written on every request and every move.

`logger.info` walks the stack to find its caller, the larger part of a line's cost, for
places that are always the same. A line made here skips that walk; it still goes through
the logger's level and handlers like any other.
"""

from __future__ import annotations

import logging


def write(logger: logging.Logger, message: str, args: tuple, fields: dict) -> None:
    """Log `message % args` at INFO with `fields` (the JSON line's own keys). Every argument
    must be a name, an identifier, a status or a number: nothing a scrub would remove."""
    if not logger.isEnabledFor(logging.INFO):
        return
    record = logging.LogRecord(logger.name, logging.INFO, __file__, 0, message, args, None)
    record.fields = fields
    record.scrubbed = True  # the formatter (on the log's own thread) need not look for cards
    logger.handle(record)
