"""A circuit breaker per gateway: after 3 charge errors in a row, skip it for a while.

Errors are charge calls that raise or take too long, never declines (a decline is the
gateway working). The state is per worker process: each worker learns on its own that a
provider is failing, which costs at most 3 failed attempts per worker.
"""

from __future__ import annotations

import time
from collections.abc import Callable

THRESHOLD = 3


class Breaker:
    def __init__(
        self,
        cooldown: float,
        clock: Callable[[], float] = time.monotonic,
        threshold: int = THRESHOLD,
        on_change: Callable[[float | None], None] | None = None,
    ) -> None:
        # Told the cooldown when the breaker opens, None when it closes (metrics).
        self.on_change = on_change
        self.cooldown = cooldown
        self.clock = clock
        self.threshold = threshold
        self.failures = 0
        self.opened_at: float | None = None

    @property
    def open(self) -> bool:
        """True while the gateway is skipped; after the cooldown one attempt may try it
        again (a success closes the breaker, another failure opens it anew)."""
        if self.opened_at is None:
            return False
        return self.clock() - self.opened_at < self.cooldown

    def succeeded(self) -> None:
        was_open = self.opened_at is not None
        self.failures = 0
        self.opened_at = None
        if was_open and self.on_change:
            self.on_change(None)

    def failed(self) -> None:
        self.failures += 1
        if self.failures >= self.threshold:
            self.opened_at = self.clock()
            if self.on_change:
                self.on_change(self.cooldown)
